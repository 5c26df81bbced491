"""`train.time_budget`: the run's length fitted to a deadline, with the schedule fitted to the length.

Libraries that offer a time limit mostly just stop (Lightning `max_time`, Keras `TimeStopping`),
mid-schedule. Budgeted-training work found that a linear decay reaching zero at the end of the
budget is what makes a short run good. So, before the first optimizer step:

  1. measure: forward + backward of the run's typical and largest batch in the chosen precision
     (the precision probe's own passes where it ran), one optimizer step, a validation pass and a
     model save; a step takes a + b x padded tokens, summed over the batches of an epoch;
  2. plan: the most steps N for which the stage's time so far + N steps + the validation passes
     (one per epoch, and the last) + the checkpoint saves + the final save fit in the budget;
  3. schedule: warm-up (train.warmup_ratio of N) and a linear decay that reaches zero at step N.

After about a minute of training (a fifth of the budget if that is sooner) the time is estimated
again from the real steps (data, optimizer and logging included), and again every REPLAN_EVERY_S
(more often near the end) from the steps of the last RECENT_S only: a machine's speed moves
during a run (a second run starts or ends, caches warm up), and one re-estimate from the first,
slow steps ended a 3-minute budget 6.8% early. Validation passes and checkpoint saves are timed
as they happen (the median of the last few replaces the figure measured before training) and
taken out of the steps they fell between. Whenever the predicted end falls past TARGET or more
than REPLAN_SHARE before it, the remaining steps are refitted and the decay continues from the
current learning rate to zero at the new end. Should the machine slow down anyway, a hard stop
ends training where one more step and the final validation pass and save still fit: the model is saved as a finished run (`stopped_by: time_budget`), never an error. The
time spent is saved with every checkpoint (emosum_state.json), so a resumed run counts it.
"""
from __future__ import annotations

import logging
import math
import re
import time

log = logging.getLogger("emosum.train")

UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m|h)\s*$")
REPLAN_SHARE = 0.02   # a predicted end this share of the budget early replans (one past the budget always does)
REPLAN_AFTER_S = 60.0  # the first re-estimate: after this much training ...
REPLAN_AFTER_SHARE = 0.2  # ... or this share of the budget, whichever comes first ...
REPLAN_AFTER_STEPS = 0.1  # ... or this share of the planned steps: a plan measured while the machine was
                          # busy (CI: 118 steps planned, all taken in 4.2 s of a 16 s budget) is corrected
                          # before the steps it planned are over
REPLAN_EVERY_S = 15.0  # then again this often ...
RECENT_S = 45.0       # ... from the steps of this last stretch only
TARGET = 0.99         # plan to end at this share of the budget: the hard stop is a safety net, not the plan
MIN_REPLAN_S = 0.5    # near the end re-estimates come at half the time left, but not more often than this
RECENT_PAUSES = 9     # validation passes / saves whose median stands for the next ones (the slowest: for the hard stop)
RECENT_STEPS = 5      # the hard stop expects the next step to take as long as the slowest of these last ones
GROW = 8.0            # the Trainer's epoch loop is sized for GROW x the planned steps (a replan may add steps;
                      # 2x could not take up a first plan made 4x too slow by a busy moment)


def seconds(text: str) -> float:
    """'90s', '45min', '2h' -> seconds; ValueError naming the accepted forms."""
    m = _DURATION.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"'{text}' is not a duration: write a number and a unit, e.g. 90s, 45min, 2h")
    return float(m.group(1)) * UNITS[m.group(2)]


class LinearSchedule:
    """LambdaLR factor: linear warm-up over `warmup` steps, then a linear decay to zero at `total`.
    After replan(step, total) the decay goes on from the factor it had at `step` down to zero at
    the new total, so the learning rate never jumps. A callable object, not a function: LambdaLR
    saves its fields in scheduler.pt, so a resumed run continues the same (replanned) schedule."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = int(warmup), int(total)
        self.from_step, self.from_factor = 0, None

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / max(1, self.warmup)
        if self.from_factor is not None and step >= self.from_step:
            return self.from_factor * max(0, self.total - step) / max(1, self.total - self.from_step)
        return max(0.0, (self.total - step) / max(1, self.total - self.warmup))

    def replan(self, step: int, total: int, warmup_ratio: float) -> None:
        if step < self.warmup:  # still warming up: the same ratio of the new length
            self.warmup, self.total = max(step, math.ceil(warmup_ratio * total)), int(total)
            return
        self.from_factor, self.from_step, self.total = self(step), int(step), int(total)


class Plan:
    """What a step, a validation pass and a save cost, and how many steps fit what is left.

    `fit` is (a, b): seconds of one micro-batch = a + b x its padded tokens; an optimizer step is
    `accumulation` micro-batches plus `optimizer_s` (0 once the fit comes from real steps, whose
    times already hold it)."""

    def __init__(self, budget_s: float, fit: tuple[float, float], micro_tokens: list[int], accumulation: int,
                 optimizer_s: float, eval_s: float, save_s: float, final_save_s: float, save_steps: int,
                 eval_steps: int | None):
        self.budget_s, self.fit, self.micro_tokens, self.accumulation = budget_s, fit, micro_tokens, accumulation
        self.optimizer_s, self.eval_s, self.save_s, self.final_save_s = optimizer_s, eval_s, save_s, final_save_s
        self.save_steps, self.eval_steps = save_steps, eval_steps
        self.steps_per_epoch = max(1, math.ceil(len(micro_tokens) / accumulation))

    def step_s(self) -> float:
        """Mean seconds of an optimizer step over an epoch's batches (their order is shuffled)."""
        a, b = self.fit
        return self.accumulation * (a + b * sum(self.micro_tokens) / max(1, len(self.micro_tokens))) + self.optimizer_s

    def evals(self, start: int, end: int) -> int:
        """Validation passes in steps (start, end]: each epoch end (or every eval_steps), and the last."""
        every = self.eval_steps or self.steps_per_epoch
        return end // every - start // every + (end % every != 0)

    def cost(self, start: int, end: int) -> float:
        """Seconds from step `start` to a saved model after step `end`."""
        saves = end // self.save_steps - start // self.save_steps
        return (end - start) * self.step_s() + self.evals(start, end) * self.eval_s + saves * self.save_s \
            + self.final_save_s

    def steps_within(self, start: int, seconds_left: float, cap: int | None = None) -> int:
        """The largest end step (at most `cap`) whose cost from `start` fits in seconds_left; at
        least start + 1."""
        lo, hi = start + 1, start + 1
        while self.cost(start, hi) <= seconds_left and (cap is None or hi < cap):
            hi = hi * 2 if cap is None else min(cap, hi * 2)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.cost(start, mid) <= seconds_left:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def as_dict(self) -> dict:
        return {"s_per_step": round(self.step_s(), 4), "eval_s": round(self.eval_s, 2),
                "checkpoint_save_s": round(self.save_s, 2), "final_save_s": round(self.final_save_s, 2),
                "steps_per_epoch": self.steps_per_epoch}


def fit_line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares seconds = a + b x tokens through the measured (tokens, seconds) points."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var > 0 else 0.0
    a = my - b * mx
    if a < 0 or b < 0:  # two noisy points: time proportional to tokens
        a, b = 0.0, my / max(1, mx)
    return a, b


def step_fit(timer, recent_s: float | None = None, pauses: list[tuple[float, float]] | None = None
             ) -> tuple[float, float]:
    """a + b x tokens from the steps timed so far (those of the last `recent_s` seconds only, when
    given, and at least 5), leaving out the intervals a validation pass or a checkpoint save fell
    into: the plan counts those on their own. `pauses` are those passes and saves as timed
    (perf_counter start, end), taken out of the intervals they fell in; without them, intervals over
    3x the median are taken for them and left out (which also drops the steps a second run suddenly
    slowed down: the timed pauses are better)."""
    from emosum import speed

    end = len(timer.starts) - 1
    first = speed.WARMUP_SKIP
    if recent_s is not None:
        while first < end - 5 and timer.starts[end] - timer.starts[first] > recent_s:
            first += 1
    def own(i):  # the interval less the timed pauses inside it
        a, b = timer.starts[i], timer.starts[i + 1]
        return b - a - sum(max(0.0, min(b, y) - max(a, x)) for x, y in pauses or ())

    pts = [(timer.tokens[i], own(i)) for i in range(first, end)]
    if pauses is None:
        med = sorted(dt for _, dt in pts)[len(pts) // 2]
        pts = [p for p in pts if p[1] <= 3 * med] or pts
    return fit_line(pts)


def _timed(fn, repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def optimizer_step_s(model, optimizer: str, device: str, sample: int = 16_000_000, max_grad_norm: float = 1.0) -> float:
    """One optimizer step as the Trainer takes it: the gradients clipped to `max_grad_norm` (its
    default 1.0: a pass over every gradient), then the optimizer's update. Measured on a flat tensor
    of up to `sample` parameters with the run's optimizer and scaled to the model's size (both are
    elementwise: linear in the parameters), apart from the model so the run's own optimizer state
    stays untouched. The sample is large on purpose: at 4M parameters (64 MB of weights, gradients
    and moments) the update ran from the CPU's cache, and without the clipping the plan put a step
    of the mt5-small shape (44.5M parameters) 20% under what the Trainer took."""
    import torch

    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # 4 tensors of m (weights, gradients, two moments) stay under the 3 of n the run's own gradients
    # and moments will take, so the sample never raises the training's measured peak
    m = max(1, min(n * 3 // 4, sample))
    p = torch.nn.Parameter(torch.zeros(m, device=device))
    p.grad = torch.randn(m, device=device)
    if optimizer == "adafactor":
        from transformers.optimization import Adafactor

        opt = Adafactor([p], lr=1e-3, relative_step=False, scale_parameter=False)
    else:
        opt = torch.optim.AdamW([p], lr=1e-3, fused=optimizer == "adamw_torch_fused")
    opt.step()  # allocates the state
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    clip = (lambda: torch.nn.utils.clip_grad_norm_([p], max_grad_norm)) if max_grad_norm else (lambda: None)
    return _timed(lambda: (clip(), opt.step(), sync()), 3) * n / m


def forward_s(model, batches: list[dict], device: str, precision: str) -> list[tuple[int, float]]:
    """(padded tokens, seconds) of a no-grad forward pass of each batch, as the validation runs it."""
    import torch

    out = []
    model.eval()
    try:
        for b in batches:
            b = {k: v.to(device) for k, v in b.items()}
            with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
                run = lambda: model(**b)  # noqa: E731
                run()
                out.append((b["input_ids"].numel() + b["labels"].numel(), _timed(run)))
    finally:
        model.train()
    return out


def save_s(model, folder) -> float:
    """Seconds to write the model's weights once (a save_pretrained's safetensors), measured in the
    scratch folder the checkpoints go to; the file is removed."""
    import os
    import tempfile

    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    seen, unique = set(), {}
    for k, v in state.items():  # tied weights: safetensors refuses shared storage
        if v.data_ptr() not in seen:
            seen.add(v.data_ptr())
            unique[k] = v
    fd, path = tempfile.mkstemp(dir=folder, suffix=".safetensors")
    os.close(fd)
    try:
        t0 = time.perf_counter()
        save_file(unique, path)
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())
        return time.perf_counter() - t0
    finally:
        os.unlink(path)


def eval_batches(dataloader) -> tuple[list[int], list[dict]]:
    """Padded tokens of every validation batch (the collator only), and the smallest and the largest
    batch to time."""
    sizes, small, large = [], None, None
    for b in dataloader:
        n = b["input_ids"].numel() + b["labels"].numel()
        sizes.append(n)
        if small is None or n < small[0]:
            small = (n, b)
        if large is None or n > large[0]:
            large = (n, b)
    return sizes, [x[1] for x in (small, large) if x]


class Clock:
    """The train stage's time: from the stage's start (STARTED in stages/train.py, before the heavy
    imports) plus what a resumed run had spent before, saved with its checkpoint."""

    def __init__(self, started: float, spent_before: float = 0.0):
        self.started, self.spent_before = started, spent_before

    def elapsed(self) -> float:
        return self.spent_before + time.monotonic() - self.started


def agree(value):
    """Rank 0's value on every rank (each rank measures on its own and could plan otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return value


def spread(sizes: list[int], k: int = 16) -> list[int]:
    """Indices of k batches whose sizes sit at evenly spaced quantiles of `sizes` (5% to 95%)."""
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    picks = [order[min(len(order) - 1, int(q * len(order)))] for q in [0.05 + 0.9 * j / max(1, k - 1) for j in range(k)]]
    return list(dict.fromkeys(picks))


def measure(trainer, model, batches: list[dict], precision: str, device: str, optimizer: str, probe: dict | None,
            run_dir, loss_fn, collate=None, more: list[dict] = ()) -> dict:
    """The costs a plan needs, measured on this machine: a + b x tokens for a training step (plus
    `collate()`, one batch's collation, when given), one validation pass, a checkpoint save and the
    final save.

    The step line is fitted through one pass of each of `more`, batches spread over the run's sizes
    (after one untimed pass): the mean of a machine whose speed drifts +-15% from second to second,
    as training sees it. The best of a few passes of one or two batches (what the precision probe
    compares, rightly for a choice) put the demo's step at 0.14 s where its epochs averaged 0.19 s
    of forward and backward."""
    from emosum import machine, memory, precision as prec

    quiet_check = machine.Snapshot()
    size = lambda b: b["input_ids"].numel() + b["labels"].numel()  # noqa: E731
    todo = list(more) or list(batches)
    with memory.untouched(model, device):
        on = lambda b: {k: v.to(device) for k, v in b.items()}  # noqa: E731
        prec.pass_seconds(model, on(max(todo, key=size)), device, precision, loss_fn)  # allocations, kernels
        points = [(size(b), prec.pass_seconds(model, on(b), device, precision, loss_fn)) for b in todo]
    a, b = fit_line(points)
    if collate is not None:  # the data side of a step: the collator pads a batch
        a += _timed(collate, 3)
    opt_s = optimizer_step_s(model, optimizer, device)
    val_shapes, val_batches = eval_batches(trainer.get_eval_dataloader())
    va, vb = fit_line(forward_s(model, val_batches, device, precision)) if val_shapes else (0.0, 0.0)
    write_s = save_s(model, run_dir)
    busy = machine.busy_between(quiet_check)
    if busy:  # the plan has to start from something; the re-estimates from real steps correct it
        log.warning("time budget: measured while the machine was busy (%s): the first plan is this moment's; the "
                    "re-estimates from the real steps follow the machine", busy)
    return {"busy": busy, "pass_fit": (a, b), "optimizer_step_s": opt_s, "eval_s": sum(va + vb * t for t in val_shapes),
            "final_save_s": write_s, "checkpoint_save_s": 3 * write_s,  # weights + AdamW's two moments
            "points": [(n, round(t, 4)) for n, t in points]}


class Keeper:
    """The budget while training: re-estimates from the real steps about a minute in, then every
    REPLAN_EVERY_S from the last RECENT_S of steps, replans when the predicted end moved by more
    than REPLAN_SHARE, and stops hard where the final validation pass and save would no longer
    fit. Used as a TrainerCallback (see `callback`)."""

    def __init__(self, plan: Plan, clock: Clock, schedule: LinearSchedule, warmup_ratio: float, cap: int,
                 planned: int, spent_before: float, timer=None):
        self.plan, self.clock, self.schedule, self.warmup_ratio, self.cap = plan, clock, schedule, warmup_ratio, cap
        self.timer, self.train_start, self.last_estimate = timer, None, None
        self.step_end = None  # when the last step's callbacks ended: a validation pass or a save after it is timed from here
        self.pauses: list[tuple[float, float]] = []  # validation passes and saves while training (perf_counter)
        self.recent: dict[str, list[float]] = {}  # the last RECENT_PAUSES durations of each kind
        self.record = {"budget_s": plan.budget_s, "planned_steps": planned, "replanned_steps": None,
                       "spent_before_resume_s": round(spent_before, 1), "stopped_by": "schedule",
                       "estimates": 0, "replans": []}

    def maybe_replan(self, state) -> None:
        """Re-estimate once about a minute (or a fifth of the budget, or a tenth of the planned
        steps) of steps is timed, then every
        REPLAN_EVERY_S (a fifth of the budget if that is sooner) from the recent steps."""
        from emosum import speed

        t = self.timer
        if t is None or self.train_start is None or len(t.starts) < speed.WARMUP_SKIP + 5:
            return
        now = time.monotonic()
        first = self.last_estimate is None
        # closer to the end, more often (half the time left, at least every MIN_REPLAN_S): a drift the
        # last estimate missed is corrected while there are steps left to take it out of
        left = self.plan.cost(state.global_step, state.max_steps)
        due = (now - self.train_start >= min(REPLAN_AFTER_S, REPLAN_AFTER_SHARE * self.plan.budget_s)
               or state.global_step >= REPLAN_AFTER_STEPS * state.max_steps) if first else \
            now - self.last_estimate >= min(REPLAN_EVERY_S, REPLAN_AFTER_SHARE * self.plan.budget_s,
                                            max(MIN_REPLAN_S, left / 2))
        if agree(due):
            self.last_estimate = now
            self.record["estimates"] += 1
            # the recent stretch: three re-estimates' worth (45 s; less in a short budget, or a second
            # run that starts half-way would be outweighed by the steps before it)
            recent = min(RECENT_S, 3 * REPLAN_AFTER_SHARE * self.plan.budget_s)
            self.replan(state, agree(step_fit(t, None if first else recent, self.pauses)))

    def replan(self, state, fit: tuple[float, float]) -> None:
        """On the refit: a + b x tokens now measured on real steps (optimizer, data and logging in)."""
        self.plan.fit, self.plan.optimizer_s = fit, 0.0
        now, step = self.clock.elapsed(), state.global_step
        if step >= state.max_steps:  # the last planned step is taken: nothing left to refit
            return
        end = now + self.plan.cost(step, state.max_steps)
        moved = (end - TARGET * self.plan.budget_s) / self.plan.budget_s
        # early by more than REPLAN_SHARE: more steps; past the target at all: fewer (the target leaves
        # 1% for noise; a drift past it the hard stop would take out of the end of the schedule)
        late = moved > 0
        # late never adds steps: steps_within answers at least one more step even when none fits,
        # which once turned a run's last step into a refit to one step more that the hard stop then
        # refused (stopped_by time_budget at step 270 of 271, in the test suite on a slowing machine)
        fits = self.plan.steps_within(step, TARGET * self.plan.budget_s - now, self.cap)
        new = agree(min(fits, state.max_steps) if late else fits if moved < -REPLAN_SHARE else state.max_steps)
        if new != state.max_steps or self.record["estimates"] <= 1:  # the first estimate always, then changes only
            log.info("time budget: at step %d after %.0f s (%.3f s a step lately) the run is predicted to end at %.0f s "
                     "(%+.1f%% of the budget %.0f s)%s", step, now, self.plan.step_s(), end, 100 * moved,
                     self.plan.budget_s, f"; replanned: {state.max_steps} -> {new} steps, the decay now reaches zero "
                     f"at step {new}" if new != state.max_steps else "; the plan stands")
        if new != state.max_steps:
            self.schedule.replan(step, new, self.warmup_ratio)
            self.record["replans"].append({"step": step, "after_s": round(now, 1), "from": state.max_steps, "to": new,
                                           "s_per_step": round(self.plan.step_s(), 4)})
            state.max_steps = new
            self.record["replanned_steps"] = new

    def saved(self) -> dict:
        """What a checkpoint keeps of the budget, so a resumed run goes on with the same schedule."""
        return {"schedule": dict(self.schedule.__dict__), "planned_steps": self.record["planned_steps"],
                "replanned_steps": self.record["replanned_steps"]}

    def callback(self):
        from transformers import TrainerCallback

        keeper = self

        class BudgetCallback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                state.max_steps = keeper.schedule.total  # the epoch loop was sized larger (GROW)
                keeper.train_start = time.monotonic()

            def on_step_end(self, args, state, control, **kwargs):
                keeper.maybe_replan(state)
                p = keeper.plan
                left = p.budget_s - keeper.clock.elapsed()
                # the next step: as the plan has it, or as long as the slowest of the last few took if
                # the machine just got slower than the last re-estimate saw; the final validation and
                # save as the slowest of their recent ones (the median, which the plan uses, left a
                # run beside a second one 0.9 s past a 16 s budget in CI: one jittery step, then a slow save)
                over = state.global_step < state.max_steps and left < keeper.reserve_s()
                if agree(over):
                    control.should_training_stop = True
                    keeper.record["stopped_by"] = "time_budget"
                    log.warning("time budget: %.0f s left, no room for another step and the final validation and "
                                "save: stopping at step %d of %d; the model is saved as a finished run",
                                left, state.global_step, state.max_steps)
                keeper.step_end = time.perf_counter()

            # The Trainer logs, validates, then saves, right after a step's callbacks: each is timed
            # from the end of the one before (the step's log is in the steps' time already), so the plan counts what they cost on the machine as it is now
            # (measured once before training, they miss a second run that started since).
            def on_log(self, args, state, control, logs=None, **kwargs):
                if not any(k.startswith("eval_") for k in logs or {}):  # the step's own log (in its time)
                    keeper.step_end = time.perf_counter()

            def on_evaluate(self, args, state, control, **kwargs):
                keeper.measured("eval_s")

            def on_save(self, args, state, control, **kwargs):
                keeper.measured("save_s")

        return BudgetCallback()

    def last_step_s(self, k: int) -> float:
        """The slowest of the last k timed steps' own seconds (the validation passes and saves
        after them taken out)."""
        t = self.timer
        if t is None or len(t.starts) < 2:
            return 0.0
        out = 0.0
        for i in range(max(1, len(t.starts) - k), len(t.starts)):
            a, b = t.starts[i - 1], t.starts[i]
            out = max(out, b - a - sum(max(0.0, min(b, y) - max(a, x)) for x, y in self.pauses[-4 - k:]))
        return out

    def reserve_s(self) -> float:
        """What another step and then the final validation pass and save need: the hard stop
        trains on only while the time left is more."""
        p = self.plan
        evals, saves = self.recent.get("eval_s"), self.recent.get("save_s")
        eval_s = max(evals) if evals else p.eval_s
        final_save_s = p.final_save_s * (max(saves) / p.save_s if saves and p.save_s > 0 else 1.0)
        return max(p.step_s(), self.last_step_s(RECENT_STEPS)) + eval_s + final_save_s

    def measured(self, what: str) -> None:
        """A validation pass or a checkpoint save just ended: the median of the last few of its kind
        replaces the plan's figure (one alone is noisy: the first save pays for opening files), and
        the final save, the weights alone, scales with the checkpoint's."""
        if self.step_end is None:
            return
        now = time.perf_counter()
        took = agree(now - self.step_end)
        self.pauses.append((self.step_end, now))
        self.step_end = now  # a save after a validation pass is timed from its end
        recent = self.recent.setdefault(what, [])
        recent.append(took)
        del recent[:-RECENT_PAUSES]
        median = sorted(recent)[len(recent) // 2]
        before = getattr(self.plan, what)
        if what == "save_s" and before > 0:
            self.plan.final_save_s *= median / before
        setattr(self.plan, what, median)
        self.record.setdefault("while_training", {})[what] = round(median, 4)


def start(trainer, model, cfg, precision: str, device: str, probe: dict | None, batches: list[dict],
          micro_tokens: list[int], accumulation: int, run_dir, clock: Clock, saved: dict | None, loss_fn,
          timer=None, collate=None, more: list[dict] = ()):
    """Plan the run within train.time_budget (or take the plan of the run being resumed): sets the
    Trainer's max_steps and its schedule. Returns the Keeper."""
    budget_s = seconds(cfg.time_budget)
    costs = agree(measure(trainer, model, batches, precision, device, cfg.optimizer, probe, run_dir, loss_fn, collate,
                          more))
    plan = Plan(budget_s, costs["pass_fit"], micro_tokens, accumulation, costs["optimizer_step_s"], costs["eval_s"],
                costs["checkpoint_save_s"], costs["final_save_s"], cfg.save_steps, cfg.eval_steps)
    if saved and saved.get("schedule"):  # resumed: the schedule (and its length) goes on as it was
        schedule = LinearSchedule(0, 0)
        schedule.__dict__.update(saved["schedule"])
        planned = saved.get("planned_steps", schedule.total)
        plan.budget_s = budget_s
        log.info("time budget %s: resumed with %.0f s already spent; the plan of %d steps goes on", cfg.time_budget,
                 clock.spent_before, schedule.total)
    else:
        now = clock.elapsed()
        planned = plan.steps_within(0, TARGET * budget_s - now)
        schedule = LinearSchedule(trainer.args.get_warmup_steps(planned), planned)
        log.info("time budget %s (%.0f s): %.0f s spent before training; measured %.3f s a step, %.1f s a validation "
                 "pass, %.1f s a checkpoint; planned %d steps (%.2f epochs of %d), warm-up %d, linear decay to zero "
                 "at step %d; predicted end %.0f s", cfg.time_budget, budget_s, now, plan.step_s(), plan.eval_s,
                 plan.save_s, planned, planned / plan.steps_per_epoch, plan.steps_per_epoch, schedule.warmup,
                 planned, now + plan.cost(0, planned))
    cap = max(schedule.total, int(GROW * planned))
    trainer.args.max_steps = schedule.total
    trainer.budget_schedule, trainer.budget_cap = schedule, cap
    keeper = Keeper(plan, clock, schedule, cfg.warmup_ratio, cap, planned, clock.spent_before, timer)
    keeper.record.update(plan=plan.as_dict(), measured={k: round(v, 4) if isinstance(v, float) else v
                                                        for k, v in costs.items()})
    return keeper
