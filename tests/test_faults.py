"""Faults in training: a damaged checkpoint, a diverging loss, a full disk. Each loses at most the
work since the last intact checkpoint and ends in one message, never a traceback."""
import errno
import logging
import math
import shutil

import pytest

from conftest import tiny_section as section, tiny_tokenized
from emosum import checkpoints
from emosum.trainer_ext import TrainingStopped
from stages import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_tokenized(tmp_path_factory.mktemp("faults"))


def run(d, tmp_path, **over):
    cfg = section("train", **{"max_steps": 4, "save_steps": 2, "logging_steps": 1, **over})
    return train.run(section("model"), cfg, d / "tokenizer", d / "tokenized", tmp_path / "model", None)


def run_dir(tmp_path):
    return next((tmp_path / ".scratch" / "train").iterdir())


def test_a_damaged_newest_checkpoint_is_skipped_for_the_intact_one(data, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    run(data, tmp_path)
    ckpt = run_dir(tmp_path) / "checkpoint-4"
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # the case: cut to half
    caplog.set_level(logging.INFO)
    again = run(data, tmp_path)
    assert again["resumed_from_step"] == 2 and again["steps"] == 4
    assert "skipping checkpoint" in caplog.text and "checkpoint-4" in caplog.text and "cut short" in caplog.text
    assert (run_dir(tmp_path) / "damaged-checkpoint-4").is_dir()


@pytest.mark.parametrize("damage, why", [
    (lambda c: (c / "optimizer.pt").unlink(), "optimizer.pt is missing"),
    (lambda c: (c / "optimizer.pt").write_bytes((c / "optimizer.pt").read_bytes()[:100]), "optimizer.pt is unreadable"),
    (lambda c: (c / "trainer_state.json").unlink(), "trainer_state.json is missing"),
    (lambda c: (c / "trainer_state.json").write_text("{\"global_st"), "trainer_state.json is unreadable"),
    (lambda c: (c / "model.safetensors").write_bytes(b"\x10"), "model.safetensors is 1 bytes"),
    (lambda c: (c / "rng_state.pth").write_bytes(b"garbled"), "rng_state.pth is unreadable"),
    (lambda c: (c / "rng_state.pth").unlink(), "rng_state.pth is missing"),
    (lambda c: (c / "emosum_state.json").unlink(), "emosum_state.json is missing (the save did not finish)"),
    (lambda c: (c / "scheduler.pt").write_bytes((c / "scheduler.pt").read_bytes() + b"0"), "scheduler.pt differs"),
])
def test_each_kind_of_damage_is_named(data, tmp_path, monkeypatch, damage, why):
    monkeypatch.chdir(tmp_path)
    run(data, tmp_path, max_steps=2)
    ckpt = run_dir(tmp_path) / "checkpoint-2"
    assert checkpoints.problem(ckpt) is None
    damage(ckpt)
    assert why in checkpoints.problem(ckpt)


def test_with_no_intact_checkpoint_the_run_starts_fresh_and_says_so(data, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    run(data, tmp_path)
    for c in run_dir(tmp_path).glob("checkpoint-*"):
        (c / "scheduler.pt").unlink()
    caplog.set_level(logging.INFO)
    again = run(data, tmp_path)
    assert again["resumed_from_step"] == 0 and again["steps_this_run"] == 4
    assert "no intact checkpoint" in caplog.text and "starting fresh" in caplog.text


@pytest.mark.parametrize("kind", ["nan", "runaway"])
def test_divergence_stops_within_a_few_logs_and_writes_no_model(data, tmp_path, monkeypatch, kind):
    """A real learning rate does not diverge here (0.5 converged under gradient clipping), so the
    loss is injected: NaN from step 3, or 100x from step 3."""
    monkeypatch.chdir(tmp_path)
    real, calls = train.token_mean_loss, []

    def injected(outputs, labels, num_items_in_batch=None):
        calls.append(num_items_in_batch is not None and outputs["logits"].requires_grad)
        calls[:] = [c for c in calls if c]  # count training steps only (not evaluation, not the probe)
        loss = real(outputs, labels, num_items_in_batch)
        if len(calls) >= 3 and num_items_in_batch is not None:  # the Trainer's steps (the memory probe passes none)
            return loss * math.nan if kind == "nan" else loss * 100
        return loss

    monkeypatch.setattr(train, "token_mean_loss", injected)
    with pytest.raises(TrainingStopped) as e:
        run(data, tmp_path, max_steps=20, save_steps=100)
    msg = str(e.value)
    step = int(msg.split("at step ")[1].split(":")[0])
    assert 3 <= step <= 3 + 3  # NaN at once; a runaway after `divergence_patience` (3) logs
    assert "learning rate" in msg and "train.learning_rate" in msg and "warmup" in msg
    assert ("nan" in msg) if kind == "nan" else ("3x its first value" in msg)
    assert not (tmp_path / "model").exists()


def test_a_full_disk_at_a_save_is_one_message_and_the_run_resumes_after(data, tmp_path, monkeypatch, caplog):
    from transformers import Trainer

    monkeypatch.chdir(tmp_path)
    real = Trainer._save_optimizer_and_scheduler

    def full(self, output_dir):
        if output_dir.endswith("checkpoint-4"):
            raise OSError(errno.ENOSPC, "No space left on device", f"{output_dir}/optimizer.pt")
        return real(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", full)
    with pytest.raises(TrainingStopped) as e:
        run(data, tmp_path, max_steps=6)
    msg = str(e.value)
    assert "no space left" in msg and "checkpoint-4/optimizer.pt" in msg and "MB" in msg
    assert "the half-written checkpoint-4 was removed" in msg and not (run_dir(tmp_path) / "checkpoint-4").exists()
    assert "resumes from" in msg and "checkpoint-2" in msg
    assert checkpoints.problem(run_dir(tmp_path) / "checkpoint-2") is None
    assert not (tmp_path / "model").exists()
    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", real)  # space freed
    caplog.set_level(logging.INFO)
    again = run(data, tmp_path, max_steps=6)
    assert again["resumed_from_step"] == 2 and again["steps"] == 6


def test_torch_reports_a_full_disk_as_a_runtime_error_and_free_space_tells_it(tmp_path, monkeypatch):
    """torch's zip writer raises `RuntimeError: [enforce fail at inline_container.cc:...] unexpected
    pos` on a full filesystem; an error with room to spare is not taken for a full disk."""
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    err = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1330880 vs 1330772")
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda p: usage(40 * 10**6, 40 * 10**6, 4096))
    assert checkpoints.out_of_space(err, tmp_path / "run", 30 * 10**6)
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda p: usage(10**12, 0, 10**11))
    assert not checkpoints.out_of_space(err, tmp_path / "run", 30 * 10**6)
    assert checkpoints.out_of_space(OSError(errno.ENOSPC, "No space left on device"), tmp_path, 10**6)


def test_space_check_warns_when_the_scratch_filesystem_is_too_small(tmp_path, monkeypatch, caplog):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 5 * 10**6, 5 * 10**6))
    info = checkpoints.check_space(tmp_path / "run", 2_000_000, "adamw_torch_fused", keep=2)
    assert info["checkpoint_mb"] == pytest.approx(25.0) and info["checkpoints_need_mb"] == pytest.approx(75.0)
    assert "only 5 MB are free" in caplog.text
    caplog.clear()
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda p: usage(10**12, 0, 10**12))
    checkpoints.check_space(tmp_path / "run", 2_000_000, "adamw_torch_fused", keep=2)
    assert "free" not in caplog.text


def test_memory_is_predicted_before_training_and_the_probe_changes_nothing(data, tmp_path, monkeypatch, caplog):
    """The probe runs a forward and backward on the largest batches before the first step; with
    dropout on (it draws random numbers) the run must still end exactly where a run without the
    probe ends."""
    from emosum import memory

    monkeypatch.chdir(tmp_path)
    model = section("model", scratch={"dropout_rate": 0.3})
    cfg = section("train", max_steps=4, save_steps=100, logging_steps=1)
    caplog.set_level(logging.INFO)
    probed = train.run(model, cfg, data / "tokenizer", data / "tokenized", tmp_path / "m1", None)
    mem = probed["memory"]
    assert "memory: predicted peak" in caplog.text
    assert mem["predicted_peak_gb"] == pytest.approx(
        mem["before_training_gb"] + mem["forward_backward_gb"] + mem["optimizer_state_gb"], abs=2e-3)
    # (the forward/backward may add nothing to what the process already holds: the precision probe
    # before it ran the same passes, and freed memory is reused, not returned)
    assert mem["forward_backward_gb"] >= 0 and mem["optimizer_state_gb"] > 0 and mem["actual_peak_gb"] > 0
    assert mem["predicted_peak_gb"] > mem["before_training_gb"]
    assert mem["prediction_error"] == pytest.approx(mem["predicted_peak_gb"] / mem["actual_peak_gb"] - 1, abs=2e-3)
    monkeypatch.setattr(memory, "predict", lambda *a, **k: {})
    shutil.rmtree(tmp_path / ".scratch")  # else it resumes from the first run's last checkpoint
    plain = train.run(model, cfg, data / "tokenizer", data / "tokenized", tmp_path / "m2", None)
    assert probed["final_loss"] == plain["final_loss"] and probed["eval_loss"] == plain["eval_loss"]


def test_memory_warns_when_the_device_has_too_little(data, tmp_path, monkeypatch, caplog):
    from emosum import memory

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * 2 ** 20)
    train.run(section("model"), section("train", max_steps=1), data / "tokenizer", data / "tokenized",
              tmp_path / "model", None)
    assert "the run needs about" in caplog.text and "lower train.batch_size" in caplog.text
