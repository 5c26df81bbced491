"""Ctrl-C and SIGTERM during training: finish the step in progress, checkpoint it, stop in one line.

Python turns SIGINT into a KeyboardInterrupt wherever the training happens to be (a traceback out
of the Trainer, the work since the last checkpoint lost), and SIGTERM, what a cluster or a spot
instance sends before it takes the machine, ends the process at once with no word. Here both only
set a flag; at the end of the optimizer step in progress the Trainer is told to save a checkpoint
and stop, and the stage ends with one line naming the checkpoint the rerun resumes from. At most
the step in progress is lost. A second signal stops at once (the work since the last checkpoint
is lost, and the line says so). `dvc repro` ignores SIGINT while a stage runs and reports the
stage's non-zero exit, so `dvc.lock` records nothing for the stage.
"""
from __future__ import annotations

import logging
import signal

log = logging.getLogger("emosum.train")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def any_rank(flag: bool) -> bool:
    """True on every rank when any rank got the signal (they must stop at the same step)."""
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = torch.tensor([int(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())
    return flag


class Interrupted(Exception):
    """A second signal, or one before training began: stop now."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class GracefulStop:
    def __init__(self):
        self.name: str | None = None
        self.training = False
        self.run_dir = None  # the checkpoints' folder, once known: the messages name the newest
        self._old: dict = {}

    def __enter__(self):
        for sig in SIGNALS:
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.name is not None or not self.training:
            raise Interrupted(name)
        self.name = name
        log.warning("%s: finishing the step in progress, then saving a checkpoint and stopping (send it again to "
                    "stop at once)", name)

    def callback(self):
        from transformers import TrainerCallback

        stop = self

        class OnSignal(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                stop.training = True

            def on_step_end(self, args, state, control, **kwargs):
                if any_rank(stop.name is not None):
                    stop.name = stop.name or "a signal to another process"
                    control.should_save = True
                    control.should_training_stop = True

            def on_epoch_end(self, args, state, control, **kwargs):
                if stop.name is not None:  # no validation pass on the way out: stop within seconds
                    control.should_evaluate = False

            def on_train_end(self, args, state, control, **kwargs):
                stop.training = False

        return OnSignal()

    def message(self, step: int, resume_from: str | None) -> str:
        return (f"stopped by {self.name} at step {step}: {resume_from} holds that step; rerun `dvc repro` to resume "
                f"from it" if resume_from else f"stopped by {self.name} at step {step}; no checkpoint could be "
                "written: rerun `dvc repro` to start again")


def interrupted_message(name: str, resume_from: str | None) -> str:
    return (f"stopped at once by {name}: the work since {resume_from} is lost; rerun `dvc repro` to resume from it"
            if resume_from else f"stopped at once by {name} before any checkpoint: rerun `dvc repro` to start again")
