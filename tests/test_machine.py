"""Runs that share a machine (emosum/machine.py): the core share between registered runs, what
else runs, and the slow-run line naming a real injected CPU hog."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emosum import machine

ROOT = Path(__file__).resolve().parents[1]
HOG = "# emosum-test-hog\nwhile True: pass"


def _peer(folder: Path, env: dict | None = None) -> subprocess.Popen:
    """Another process registered as an emosum run in `folder`, until killed."""
    code = ("import sys, time; sys.path.insert(0, %r)\nfrom emosum import machine\nfrom pathlib import Path\n"
            "with machine.Share('train', Path(%r)) as s:\n    print(s.threads, flush=True)\n    time.sleep(120)"
            % (str(ROOT), str(folder)))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", machine.THREADS_ENV)} | (env or {})
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip().isdigit()  # registered
    return p


@pytest.fixture
def no_fixed_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(machine.THREADS_ENV, raising=False)
    monkeypatch.delenv(machine.SHARE_ENV, raising=False)


def test_runs_split_the_cores_and_take_them_back_when_the_other_ends(tmp_path, no_fixed_threads):
    import torch

    n = machine.cores()
    before = torch.get_num_threads()
    peer = _peer(tmp_path)
    try:
        with machine.Share("train", tmp_path) as share:
            assert share.threads == max(1, n // 2) == torch.get_num_threads()
            assert share.started_with["other_runs"] == 1
            peer.kill()
            peer.wait()
            assert share.rebalance(force=True) == (n if n // 2 != n else None) or n == 1
            assert share.threads == n == torch.get_num_threads()
            assert share.record()["changes"][-1]["to"] == n or n == 1
        assert not list(tmp_path.glob("*.json"))  # its entry is gone with it
    finally:
        peer.kill()
        torch.set_num_threads(before)


def test_a_run_already_going_gives_up_cores_to_one_that_starts(tmp_path, no_fixed_threads):
    import torch

    before = torch.get_num_threads()
    try:
        with machine.Share("train", tmp_path) as share:
            assert share.threads == machine.cores()
            peer = _peer(tmp_path)
            try:
                share.rebalance(force=True)
                assert share.threads == max(1, machine.cores() // 2)
            finally:
                peer.kill()
    finally:
        torch.set_num_threads(before)


def test_fixed_threads_are_kept_and_counted_by_the_others(tmp_path, no_fixed_threads, monkeypatch):
    import torch

    before = torch.get_num_threads()
    peer = _peer(tmp_path, {machine.THREADS_ENV: "1"})
    try:
        with machine.Share("train", tmp_path) as share:
            assert share.threads == max(1, machine.cores() - 1)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        with machine.Share("evaluation", tmp_path) as share:
            assert share.threads == 3 and "OMP_NUM_THREADS=3" in share.started_with["why"]
            assert share.rebalance(force=True) is None
    finally:
        peer.kill()
        torch.set_num_threads(before)


def test_a_dead_runs_entry_is_ignored_and_removed(tmp_path, no_fixed_threads):
    stale = tmp_path / "999999.json"
    stale.write_text(json.dumps({"pid": 999_999, "created": 1.0, "stage": "train", "threads": 2}))
    share = machine.Share("train", tmp_path)
    assert share.peers() == [] and not stale.exists()


def test_a_killed_run_not_yet_reaped_holds_no_cores(tmp_path, no_fixed_threads):
    """A run killed with SIGKILL is a zombie until its parent (or the init process, for an orphan)
    reaps it: its entry still names a live pid with the right start time, and a resumed run started
    at once took half the cores (a resume in tests/test_kill.py then differed in the last bits)."""
    import signal

    peer = _peer(tmp_path)
    assert len(machine.Share("train", tmp_path).peers()) == 1
    os.kill(peer.pid, signal.SIGKILL)
    while _status(peer.pid) != "zombie":  # dead, not reaped: we have not waited for it
        time.sleep(0.05)
    assert machine.Share("train", tmp_path).peers() == []
    peer.wait()


def _status(pid: int) -> str:
    import psutil

    return psutil.Process(pid).status()


def _hog() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOG])


def test_diagnosis_names_a_process_taking_the_cpu():
    hog = _hog()
    try:
        time.sleep(0.3)
        a = machine.Snapshot()
        time.sleep(1.5)
        causes = machine.diagnose(a, machine.Snapshot(), threads=machine.cores(), device="cpu", own_cores=1.0)
        busy = machine.busy_between(a)
    finally:
        hog.kill()
    key, line = causes[0]
    assert key == "other_processes" and "emosum-test-hog" in line and f"pid {hog.pid}" in line
    assert "busy threads" in dict(causes)["threads"]  # the hog's thread beside this run's, one per core
    assert "emosum-test-hog" in busy  # a measurement taken now is not the machine's


def test_before_start_says_what_already_takes_the_machine(caplog):
    hogs = [_hog() for _ in range(machine.cores())]
    try:
        time.sleep(0.5)
        line = machine.before_start("training", seconds=1.0)
    finally:
        for h in hogs:
            h.kill()
    assert line and "emosum-test-hog" in line and "already loaded" in caplog.text
    assert machine.before_start("training") is None or "emosum-test-hog" not in machine.before_start("training")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from conftest import tiny_tokenized

    d = tiny_tokenized(tmp_path_factory.mktemp("machine"), n=120)
    return d / "tokenizer", d / "tokenized"


def test_a_slow_training_names_the_hog_beside_it(tiny_data, tmp_path, monkeypatch, caplog):
    """A real training of the tiny model; hogs (two per core) start after its reference steps. With
    the watch's window shortened to 4 s, the line naming them must come within 60 s of their start
    (the product's window is 60 s, its deadline 90 s)."""
    from transformers import TrainerCallback

    from emosum import speed
    from conftest import tiny_section
    from stages import train

    monkeypatch.setattr(machine, "SLOW_FOR_S", 4.0)
    monkeypatch.setattr(machine, "WATCH_EVERY_S", 1.0)
    monkeypatch.setattr(speed, "MIN_FIT_S", 2.0)  # the reference: the run's first 2 s of steps (fp32: no probe)
    hogs, started = [], []

    class Hogs(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if not hogs and time.monotonic() - t0 > 6.0:
                hogs.extend(_hog() for _ in range(2 * machine.cores()))
                started.append(time.monotonic())
            if hogs and ("emosum-test-hog" in caplog.text or time.monotonic() - started[0] > 60):
                control.should_training_stop = True

    tok_dir, data_dir = tiny_data
    monkeypatch.chdir(tmp_path)  # .scratch/ lands here
    t0 = time.monotonic()
    try:
        stats = train.run(tiny_section("model"), tiny_section("train", max_steps=100_000, epochs=1000,
                                                              precision="fp32", save_steps=100_000,
                                                              logging_steps=1000),
                          tok_dir, data_dir, tmp_path / "model", None, callbacks=[Hogs()])
    finally:
        for h in hogs:
            h.kill()
    assert hogs, "the training ended before the hogs started"
    events = stats["slow_run"]["events"]
    assert events and events[0]["cause"] == "other_processes" and "emosum-test-hog" in events[0]["line"]
    assert events[0]["slowdown"] > machine.SLOW_FACTOR
    assert caplog.text.count("slow run:") == len(events) == len({e["cause"] for e in events})  # once per cause
    assert stats["slow_run"]["reference"] == "the run's first timed steps"
    assert stats["cores"]["threads"] >= 1 and stats["cores"]["cores"] == machine.cores()
