"""Interrupting `dvc repro` (kill -9, Ctrl-C, SIGTERM, a full disk) during training and evaluation:
the rerun resumes and ends where an uninterrupted run ends, and nothing already written is lost.

Every interruption here lands mid-epoch (10 steps an epoch, checkpoints every 13 steps), where the
data order of the epoch in progress decides what the resumed run sees."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, make_repo, run_cmd

pytestmark = pytest.mark.slow
RESUME = {"train": {"epochs": 15, "save_steps": 13, "logging_steps": 5}}  # 150 steps: 13, 26, ... mid-epoch


def start(repo: Path) -> subprocess.Popen:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(ROOT))
    return subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # its own process group, signalled whole


def wait_for(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, f"dvc repro ended before the signal:\n{proc.stdout.read()}"
        assert time.monotonic() - t0 < timeout
        time.sleep(0.02)


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    wait_for(proc, ready, timeout)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def committed(repo: Path, step: int):
    """True once checkpoint-<step> is complete (its commit record written)."""
    return lambda: any((c / "emosum_state.json").exists()
                       for c in (repo / ".scratch" / "train").glob(f"*/checkpoint-{step}"))


def set_params(repo: Path, section: str, **values) -> None:
    doc = yaml.safe_load((repo / "params.yaml").read_text())
    doc[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))


def lock_stages(repo: Path) -> set:
    lock = repo / "dvc.lock"
    return set(yaml.safe_load(lock.read_text())["stages"]) if lock.exists() else set()


def outcome(repo: Path) -> dict:
    """What a finished run left: its final losses and learning rate, and its weights' hash."""
    m = json.loads((repo / "metrics" / "train.json").read_text())
    lr = (repo / "metrics" / "train_live" / "plots" / "metrics" / "learning_rate.tsv").read_text().split()
    weights = hashlib.sha256((repo / "model" / "model.safetensors").read_bytes()).hexdigest()
    return {"final_loss": m["final_loss"], "eval_loss": m["eval_loss"], "lr": lr[-1], "steps": m["steps"],
            "resumed_from_step": m["resumed_from_step"], "weights": weights}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("whole") / "repo", **RESUME)
    run_cmd(["dvc", "repro"], repo)
    return outcome(repo)


def assert_same_run(resumed: dict, whole: dict) -> None:
    assert resumed["steps"] == whole["steps"] == 150 and resumed["resumed_from_step"] > 0
    assert resumed["final_loss"] == pytest.approx(whole["final_loss"], rel=1e-3)
    assert resumed["eval_loss"] == pytest.approx(whole["eval_loss"], rel=1e-3)
    assert resumed["lr"] == whole["lr"]
    assert resumed["weights"] == whole["weights"]  # bit-identical on one machine


def test_kill_mid_epoch_resumes_into_the_uninterrupted_run(tmp_path, uninterrupted):
    repo = make_repo(tmp_path / "repo", **RESUME)
    proc = start(repo)
    kill_when(proc, committed(repo, 65))  # step 65: half-way through epoch 7
    assert not (repo / "model").exists()
    assert "train" not in lock_stages(repo) and {"subsample", "tokenize"} <= lock_stages(repo)
    out = run_cmd(["dvc", "repro"], repo)
    assert "resuming from" in out.stdout + out.stderr and "(step 65;" in out.stdout + out.stderr
    assert_same_run(outcome(repo), uninterrupted)


def test_resume_from_an_older_checkpoint_when_the_newest_is_damaged(tmp_path, uninterrupted):
    repo = make_repo(tmp_path / "repo", **RESUME)
    proc = start(repo)
    kill_when(proc, committed(repo, 65))
    newest = next((repo / ".scratch" / "train").glob("*/checkpoint-65"))
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    out = run_cmd(["dvc", "repro"], repo)
    log = out.stdout + out.stderr
    assert "skipping checkpoint" in log and "checkpoint-65" in log and "(step 52;" in log
    assert_same_run(outcome(repo), uninterrupted)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_checkpoint_the_step_and_stop_in_one_line(tmp_path, uninterrupted, sig):
    repo = make_repo(tmp_path / "repo", **RESUME)
    proc = start(repo)
    wait_for(proc, committed(repo, 26))
    t0 = time.monotonic()
    os.killpg(proc.pid, sig)  # the whole group, as a terminal's Ctrl-C or a scheduler's SIGTERM does
    out, _ = proc.communicate(timeout=60)  # SIGTERM ends dvc at once; the stage still writes to the pipe
    while True:  # ... until every process of the group is gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() - t0 < 60, "the stage did not stop"
        time.sleep(0.05)
    assert time.monotonic() - t0 < 30
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    lines = [line for line in out.splitlines() if f"stopped by {sig.name} at step" in line]
    assert len(lines) == 1, out[-3000:]
    step = int(lines[0].split(" at step ")[1].split(":")[0])
    assert step >= 26 and f"checkpoint-{step} holds that step" in lines[0]
    assert "train" not in lock_stages(repo) and not (repo / "model").exists()
    rerun = run_cmd(["dvc", "repro"], repo)
    assert f"(step {step};" in rerun.stdout + rerun.stderr
    assert_same_run(outcome(repo), uninterrupted)


def test_a_real_full_disk_ends_in_the_message_and_the_rerun_with_space_finishes(tmp_path):
    """The checkpoint folder on a 2.6 MB tmpfs: two tiny checkpoints (about 1 MB each) fit, the third
    does not, and torch's zip writer fails with a RuntimeError, not an ENOSPC."""
    repo = make_repo(tmp_path / "repo", train={"epochs": 2, "save_steps": 2})  # 20 steps, a save every 2
    scratch = repo / ".scratch"
    scratch.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2600k", "tmpfs", str(scratch)], capture_output=True,
                           text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mount.stderr.strip() or 'mount failed'}; it needs root); "
                    "tests/test_faults.py injects the error instead")
    try:
        out = run_cmd(["dvc", "repro"], repo, check=False)
        log = out.stdout + out.stderr
        assert out.returncode != 0 and "Traceback" not in log, log[-3000:]
        assert "checkpoints need about" in log  # the warning before training
        assert "no space left on the device while writing" in log and "resumes from" in log
        assert "train" not in lock_stages(repo) and not (repo / "model").exists()
        subprocess.run(["mount", "-o", "remount,size=64m", str(scratch)], check=True)  # space freed
        again = run_cmd(["dvc", "repro", "train"], repo)  # (cleanup could not remove a mount point)
        assert "resuming from" in again.stdout + again.stderr
        assert json.loads((repo / "metrics" / "train.json").read_text())["steps"] == 20 and "train" in lock_stages(repo)
    finally:
        subprocess.run(["umount", "-l", str(scratch)], capture_output=True)


def test_kill_during_evaluate_leaves_valid_metrics_and_reruns_only_evaluate(repo):
    run_cmd(["dvc", "repro"], repo)
    before = {p: p.read_bytes() for p in (repo / "metrics").glob("*.json")}
    set_params(repo, "evaluate", num_beams=3)
    proc = start(repo)
    out = []

    def evaluating():
        line = proc.stdout.readline()
        out.append(line)
        return "emosum.evaluate INFO params" in line

    kill_when(proc, evaluating)
    for p in (repo / "metrics").glob("*.json"):
        json.loads(p.read_text(encoding="utf-8"))  # each the old file or the new one, never half
    assert set(before) <= set((repo / "metrics").glob("*.json"))
    again = run_cmd(["dvc", "repro"], repo).stdout
    import re

    assert re.findall(r"Running stage '([^']+)'", again) == ["evaluate", "cleanup"]
