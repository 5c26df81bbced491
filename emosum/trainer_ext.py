"""Trainer add-ons for the train stage: the token-weighted loss, step-aligned dvclive curves, step
timing for the speed prediction, and the model card. Kept apart so stages/train.py stays a readable sequence."""
from __future__ import annotations

import logging
import time

from emosum import hf, speed

log = logging.getLogger("emosum.train")


def token_mean_loss(outputs, labels, num_items_in_batch=None):
    """Cross-entropy summed over the label tokens, divided by the tokens of the whole global batch.

    The Trainer's `compute_loss_func` hook. mT5's forward accepts **kwargs but ignores
    `num_items_in_batch`, so without this the Trainer neither divides the loss by the accumulation
    steps nor weights micro-batches by their tokens, and scales it by the process count for DDP:
    accumulation 2 or 2 processes reported (and back-propagated) twice the loss, and the validation
    loss of a 2-process run read 2x (transformers issue #47688; tested). With the global token count
    here, any mix of batch size, accumulation and processes gives the loss of one big batch.
    """
    import torch.nn.functional as F

    logits = outputs["logits"]
    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1).to(logits.device),
                           ignore_index=-100, reduction="sum")
    align = outputs.get("copy_alignment_loss")  # the copy head's alignment loss (emosum/pointer.py), summed
    if align is not None:
        loss = loss + align
    tagged = outputs.get("feeling_tags_loss")  # the feeling head's loss (train.feeling_tags), summed
    if tagged is not None:
        loss = loss + tagged
    count = num_items_in_batch if num_items_in_batch is not None else labels.ne(-100).sum()
    return loss / count


def step_aligned_dvclive(live):
    """DVCLiveCallback that logs at the Trainer's global step.

    The stock callback counts its own steps (one per log call), so the validation loss logged at
    the end of an epoch lands at step 51 while the training loss beside it is at step 1250.
    """
    from transformers.integrations import DVCLiveCallback

    class Callback(DVCLiveCallback):
        def on_log(self, args, state, control, **kwargs):
            self.live.step = state.global_step
            return super().on_log(args, state, control, **kwargs)

    return Callback(live=live)


def model_card(model_p, cfg, model, ds, keep, n_params_before, precision, steps, losses, evals,
               selected: bool = False, guided: bool = False) -> str:
    """model/README.md: what this model is and how it was made. No dates or timings, so the same
    params and data give the same card."""
    import yaml

    c = model.config
    base = "none: an mT5 architecture initialised from scratch" if hf.is_scratch(model_p.name) else model_p.name
    arch = {k: getattr(c, k) for k in ("d_model", "d_ff", "d_kv", "num_heads", "num_layers",
                                       "num_decoder_layers", "vocab_size")}
    return "\n".join([
        "---", "language: zh", "library_name: transformers", "pipeline_tag: summarization", "tags: [mt5, emosum]", "---",
        "# emosum summarizer", "",
        "Writes a short Chinese summary of an emotional text: who feels what, and why.", "",
        f"- Base checkpoint: {base}",
        f"- Architecture: {type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters; "
        + ", ".join(f"{k} {v}" for k, v in arch.items()),
        f"- Vocabulary: {'pruned to the %d ids the training data uses (from %s parameters)' % (len(keep), f'{n_params_before:,}') if keep else 'as the tokenizer'}",
        f"- Data: {len(ds['train']):,} training pairs, {len(ds['validation']):,} validation pairs",
        "- Long inputs: " + ("the sentences the saved scorer (selector.json) picks, up to the tokenizer's max length; "
                             "`summarize` applies it" if selected else "the first tokens, up to the tokenizer's max length"),
        "- Guide: " + ("the clauses the saved clause scorer (guide.json) picks are written before each input; "
                       "`summarize` does the same" if guided else "none"),
        f"- Training: {steps} steps, precision {precision}; final training loss "
        f"{losses[-1] if losses else float('nan'):.4f}, validation loss {evals[-1] if evals else float('nan'):.4f}",
        "- Test-set ROUGE: see metrics/eval.json in the repository that made this model", "",
        "## Use", "", "```bash", "summarize --model model \"今天被老板当众批评了，委屈得想哭。\"", "```", "",
        "## Params", "", "```yaml", yaml.safe_dump({"model": model_p.model_dump(), "train": cfg.model_dump()},
                                                  allow_unicode=True, sort_keys=False).rstrip(), "```", ""])


def save_model(trainer, tok, tok_dir: Path | None, card: str, out_dir: Path) -> None:
    """model/: weights, tokenizer, the input selection and the guide when there are (from tok_dir),
    the model card; written to a temporary folder and renamed. No pickle: the Trainer's
    training_args.bin (a pickled TrainingArguments) is removed, the card holds the params."""
    import shutil

    from emosum import dataio, guide, punctuation, selection

    with dataio.atomic_path(out_dir, is_dir=True) as tmp:
        trainer.save_model(str(tmp))
        (tmp / "training_args.bin").unlink(missing_ok=True)
        tok.save_pretrained(str(tmp))
        # the input selection, the guide and the punctuation table travel with the model
        for name in (selection.FILE, guide.FILE, punctuation.FILE):
            if tok_dir is not None and (tok_dir / name).is_file():
                shutil.copy2(tok_dir / name, tmp / name)
        (tmp / "README.md").write_text(card, encoding="utf-8")


def device_sync() -> None:
    """Wait for the queued GPU work (nothing to wait for on a CPU)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


class EpochSeededSampler:
    """The Trainer's length-grouped order, drawn from a generator seeded with (seed + epoch).

    transformers' LengthGroupedSampler draws each epoch's order from the global torch RNG, whose
    state at an epoch's start depends on everything drawn before it. A run resumed mid-epoch reseeds
    that RNG and restores the checkpoint's state only after drawing the order, so the rest of that
    epoch saw other batches than the uninterrupted run (issue 18: losses parted at the first log
    after the resume; the final training loss was 5-13% off). Seeded by epoch, the order is a
    function of (seed, epoch) alone: the resumed run skips exactly the batches the interrupted one
    trained on. `set_epoch` is what the Trainer and accelerate's loaders call each epoch."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=g))


def timed_trainer(base, timer: speed.StepTimer):
    """The Trainer with each micro-batch's start time and padded size recorded for the prediction
    (it waits for the device only where a timing window closes: a fit, the run's end, not per
    step), the length-grouped order seeded by epoch (exact resume), and the time budget's schedule
    when one is set (emosum/budget.py)."""
    import math

    from transformers import TrainerCallback
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class StepEnd(TrainerCallback):  # the last in the list: it sees whether another stopped the run
        def on_step_end(self, args, state, control, **kwargs):
            if control.should_training_stop or state.global_step >= state.max_steps:
                device_sync()  # the only per-run sync: the last step's kernels have run
            timer.end = time.perf_counter()

    class Timed(base):
        budget_schedule = None  # budget.LinearSchedule when train.time_budget is set
        budget_cap = None       # ... and the most steps a replan may reach (the epoch loop is sized for it)

        def __init__(self, *a, callbacks=(), **kw):
            super().__init__(*a, callbacks=[*callbacks, StepEnd()], **kw)

        def _get_train_sampler(self, train_dataset=None):
            sampler = super()._get_train_sampler(train_dataset)
            if isinstance(sampler, LengthGroupedSampler):
                return EpochSeededSampler(sampler.lengths, sampler.batch_size, self.args.seed)
            return sampler  # random order: accelerate's seedable sampler is already seeded by epoch

        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.budget_schedule is None:
                return super().create_scheduler(num_training_steps, optimizer)
            if self.lr_scheduler is None:
                from torch.optim.lr_scheduler import LambdaLR

                self.lr_scheduler = LambdaLR(optimizer or self.optimizer, self.budget_schedule)
            return self.lr_scheduler

        def set_initial_training_values(self, args, dataloader):
            values = list(super().set_initial_training_values(args, dataloader))
            if self.budget_cap:  # room for a replan that adds steps; state.max_steps still ends the run
                values[0] = max(values[0], math.ceil(self.budget_cap / values[1]))
            return tuple(values)

        def training_step(self, model, inputs, num_items_in_batch=None):
            if not timer.starts:
                timer.first_step = self.state.global_step  # > 0 when resumed
            timer.record(inputs)
            planned = (self.state.max_steps - timer.first_step) * self.args.gradient_accumulation_steps
            if timer.ready(planned):
                device_sync()  # the window's end: every queued step has run
                timer.starts[-1] = time.perf_counter()
                timer.on_ready(timer.fit_line(), planned)
            return super().training_step(model, inputs, num_items_in_batch)

    return Timed


def predict(info: dict, timer: speed.StepTimer, fit, shapes, micro_steps: int) -> None:
    done = len(timer.starts) - 1
    total = speed.predict_total(fit, shapes, micro_steps)
    first = "predicted_train_s" not in info
    if first:
        info.update(predicted_train_s=round(total, 1), predicted_s_per_step=round(total / max(1, micro_steps), 4))
    else:  # the refit on a longer window; the first prediction stays as it was made
        info.update(revised_predicted_train_s=round(total, 1))
    info.update(fit_seconds_per_kilotoken=round(1000 * fit[1], 4), fit_seconds_per_step_overhead=round(fit[0], 4))
    log.info("%s from %d timed steps: %.3f s/step, %.0f s (%.1f min) for %d steps",
             "predicted" if first else "revised prediction", done, total / max(1, micro_steps), total, total / 60,
             micro_steps)


class TrainingStopped(RuntimeError):
    """Training cannot go on (divergence, a full disk): one message, no traceback, no model/."""


def divergence_guard(factor: float, patience: int):
    """Stops a run whose logged training loss is NaN or infinite, or stays above `factor` times the
    first logged loss for `patience` logs in a row, naming the step, the loss, the learning rate
    and what to try. The Trainer's `logging_nan_inf_filter` must be off, or a NaN is averaged away."""
    import math

    from transformers import TrainerCallback

    def stop(state, loss, lr, what):
        raise TrainingStopped(
            f"training diverged at step {state.global_step}: the loss {what} (loss {loss}, learning rate "
            f"{lr:.3g}). Try a lower train.learning_rate (e.g. half), a longer warm-up (train.warmup_ratio) "
            "or precision fp32; the checkpoints before this step are in .scratch/train. No model was written.")

    class Guard(TrainerCallback):
        high = 0

        def on_log(self, args, state, control, logs=None, **kwargs):
            loss = (logs or {}).get("loss")
            if loss is None:
                return
            lr = float(logs.get("learning_rate") or 0.0)
            if not math.isfinite(loss):
                stop(state, loss, lr, "became " + str(loss))
            # the first logged loss of the run, a resumed run included (it is in log_history)
            first = next(h["loss"] for h in state.log_history if "loss" in h)
            self.high = self.high + 1 if loss > factor * first else 0
            if self.high >= patience:
                stop(state, round(loss, 4), lr, f"stayed above {factor:g}x its first value {first:.4f} for "
                     f"{patience} logs in a row")

    return Guard()
