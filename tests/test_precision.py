"""precision: auto times every precision on the run's own batches and trains in the fastest,
without changing what the run computes; short runs take the remembered answer."""
import logging
import shutil

import pytest

from conftest import tiny_section as section, tiny_tokenized
from emosum import hf, precision
from stages import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_tokenized(tmp_path_factory.mktemp("prec"))


@pytest.fixture
def two_candidates(monkeypatch, tmp_path):
    # bf16 autocast runs on any CPU (slowly where it has no bf16 units): both are real candidates here
    monkeypatch.setattr(precision, "candidates", lambda device: ["fp32", "bf16"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def run(d, tmp_path, name, **over):
    cfg = section("train", **{"max_steps": 6, "save_steps": 100, "logging_steps": 1, **over})
    model = section("model", scratch={"dropout_rate": 0.2})  # the probe must restore the random state
    stats = train.run(model, cfg, d / "tokenizer", d / "tokenized", tmp_path / name, None)
    shutil.rmtree(tmp_path / ".scratch", ignore_errors=True)
    return stats


def test_auto_measures_trains_in_the_fastest_and_matches_a_forced_run(data, tmp_path, monkeypatch, two_candidates,
                                                                     caplog):
    monkeypatch.setattr(precision, "PROBE_SHARE", 1e6)  # a 6-step run may spend what it likes on the probe
    caplog.set_level(logging.INFO)
    auto = run(data, tmp_path, "auto", precision="auto")
    probe = auto["precision_probe"]
    assert probe["source"] == "measured" and set(probe["s_per_pass"]) == {"fp32", "bf16"}
    t = probe["s_per_pass"]
    # the fastest, unless it beats fp32 by less than the margin (then the exact one)
    expected = "bf16" if t["bf16"] < (1 - precision.MARGIN) * t["fp32"] else "fp32"
    assert probe["choice"] == expected == auto["precision"]
    assert "precision auto: forward+backward" in caplog.text
    forced = run(data, tmp_path, "forced", precision=auto["precision"])
    assert forced["precision_probe"] is None
    assert auto["final_loss"] == forced["final_loss"] and auto["eval_loss"] == forced["eval_loss"]


def test_a_run_too_short_for_the_probe_takes_the_remembered_answer(data, tmp_path, monkeypatch, two_candidates,
                                                                   caplog):
    monkeypatch.setattr(precision, "PROBE_SHARE", 0.0)
    caplog.set_level(logging.INFO)
    first = run(data, tmp_path, "a", precision="auto")
    assert first["precision"] == "fp32" and "no measurement for this device" in first["precision_probe"]["source"]
    assert "too short to time every precision" in caplog.text
    monkeypatch.setattr(precision, "PROBE_SHARE", 1e6)
    from emosum import machine

    monkeypatch.setattr(machine, "busy_between", lambda *a: None)  # remembered only when quiet (tested below)
    measured = run(data, tmp_path, "b", precision="auto")["precision"]
    monkeypatch.setattr(precision, "PROBE_SHARE", 0.0)
    again = run(data, tmp_path, "c", precision="auto")
    assert again["precision"] == measured and again["precision_probe"]["source"].startswith("the fastest measured")


def test_remembered_answers_tell_cpus_apart(monkeypatch):
    """Machines of one kind differ in bf16 units: the key names the CPU model and whether bf16 is
    there (platform.processor(), used before, is empty on Linux)."""
    from pathlib import Path

    from transformers import MT5Config, MT5ForConditionalGeneration

    from emosum import hf

    model = MT5ForConditionalGeneration(MT5Config(vocab_size=100, d_model=16, d_ff=32, d_kv=8, num_heads=2,
                                                  num_layers=1))
    keys = {}
    for bf16 in (True, False):
        monkeypatch.setattr(hf, "bf16_available", lambda bf16=bf16: bf16)
        keys[bf16] = precision.device_key(model, "cpu", 4)
    assert keys[True] != keys[False]
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        name = next(line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name"))
        assert name in keys[True]


def test_a_burst_of_load_during_the_probe_does_not_decide_it(data, monkeypatch):
    """Something else takes the CPU for a few of the probe's passes: timed one precision after the
    other, they all land on fp32, which reads slow and loses; interleaved, best of 3, they do not."""
    import time

    from transformers import DataCollatorForSeq2Seq

    from datasets import load_from_disk
    from emosum import hf
    from emosum.trainer_ext import token_mean_loss

    monkeypatch.setattr(precision, "candidates", lambda device: ["fp32", "bf16"])
    monkeypatch.setattr(precision, "PROBE_SHARE", 1e6)
    tok = hf.load_tokenizer(str(data / "tokenizer"))
    model = hf.scratch_model(section("model").scratch, tok)
    batches = precision.probe_batches(load_from_disk(str(data / "tokenized"))["train"],
                                      DataCollatorForSeq2Seq(tok, model=model, label_pad_token_id=-100), 4)
    quiet = precision.choose(model, batches, "cpu", steps=10_000, batch=4, loss_fn=token_mean_loss)["s_per_pass"]
    calls = []

    def burst(module, args):  # passes 5 to 8 wait 0.5 s, as if the cores were busy for 2 s
        calls.append(1)
        if 4 < len(calls) <= 8:
            time.sleep(0.5)

    model.register_forward_pre_hook(burst)
    loaded = precision.choose(model, batches, "cpu", steps=10_000, batch=4, loss_fn=token_mean_loss)["s_per_pass"]
    assert len(calls) > 8 and quiet["fp32"] < 0.1
    assert loaded["fp32"] < 0.1  # timed back to back, 3 of its 6 timed passes would carry the wait: >= 0.25


def test_a_probe_timed_on_a_busy_machine_is_not_remembered(data, monkeypatch, tmp_path, caplog):
    """CPU hogs (one per core) run through the probe: the run trains in what it measured, but the
    choice is not saved as this machine's (the next run measures again), and the log says why."""
    import subprocess
    import sys

    from transformers import DataCollatorForSeq2Seq

    from datasets import load_from_disk
    from emosum import hf, machine
    from emosum.trainer_ext import token_mean_loss

    monkeypatch.setattr(precision, "candidates", lambda device: ["fp32", "bf16"])
    monkeypatch.setattr(precision, "PROBE_SHARE", 1e6)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tok = hf.load_tokenizer(str(data / "tokenizer"))
    model = hf.scratch_model(section("model").scratch, tok)
    batches = precision.probe_batches(load_from_disk(str(data / "tokenized"))["train"],
                                      DataCollatorForSeq2Seq(tok, model=model, label_pad_token_id=-100), 4)
    hogs = [subprocess.Popen([sys.executable, "-c", "# emosum-test-hog\nwhile True: pass"])
            for _ in range(machine.cores())]
    try:
        info = precision.choose(model, batches, "cpu", steps=10_000, batch=4, loss_fn=token_mean_loss)
    finally:
        for h in hogs:
            h.kill()
    assert info["remembered"] is False and "emosum-test-hog" in info["busy"]
    assert precision.remembered(precision.device_key(model, "cpu", 4)) is None
    assert "not remembered as this machine's" in caplog.text
