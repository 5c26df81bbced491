"""kill -9 of the whole `dvc repro` process group, during training and during evaluation: the next
`dvc repro` loses at most the work since the last checkpoint and nothing already written."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_cmd

pytestmark = pytest.mark.slow


def start(repo: Path) -> subprocess.Popen:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(ROOT))
    return subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # its own process group, killed whole


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, f"dvc repro ended before the kill:\n{proc.stdout.read()}"
        assert time.monotonic() - t0 < timeout
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def set_params(repo: Path, section: str, **values) -> None:
    doc = yaml.safe_load((repo / "params.yaml").read_text())
    doc[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))


def lock_stages(repo: Path) -> set:
    lock = repo / "dvc.lock"
    return set(yaml.safe_load(lock.read_text())["stages"]) if lock.exists() else set()


def test_kill_during_training_resumes_and_ends_where_an_uninterrupted_run_ends(repo):
    set_params(repo, "train", epochs=30, save_steps=40, logging_steps=10)  # 300 steps of batch 4
    proc = start(repo)
    scratch = repo / ".scratch" / "train"
    kill_when(proc, lambda: any((c / "trainer_state.json").exists() for c in scratch.glob("*/checkpoint-80")))
    assert not (repo / "model").exists()
    assert "train" not in lock_stages(repo) and {"subsample", "tokenize"} <= lock_stages(repo)

    out = run_cmd(["dvc", "repro"], repo)
    log = out.stdout + out.stderr
    assert "resuming from" in log and "(step " in log
    resumed = json.loads((repo / "metrics" / "train.json").read_text())
    assert resumed["resumed_from_step"] >= 80 and resumed["steps"] == 300
    lr_resumed = (repo / "metrics" / "train_live" / "plots" / "metrics" / "learning_rate.tsv").read_text().split()

    # the same params uninterrupted (cleanup removed the checkpoints, so this starts fresh)
    run_cmd(["dvc", "repro", "-f", "-s", "train"], repo)
    whole = json.loads((repo / "metrics" / "train.json").read_text())
    assert whole["resumed_from_step"] == 0
    assert resumed["final_loss"] == pytest.approx(whole["final_loss"], rel=0.01)
    assert resumed["eval_loss"] == pytest.approx(whole["eval_loss"], rel=0.01)
    # the learning-rate schedule went on where it was: the same last value
    lr_whole = (repo / "metrics" / "train_live" / "plots" / "metrics" / "learning_rate.tsv").read_text().split()
    assert lr_resumed[-2:] == lr_whole[-2:]


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
