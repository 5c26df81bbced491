"""`train.precision: auto` measures instead of guessing.

bf16 is not always the faster: on an H200 the fast config's small mT5 ran 3.3x slower in bf16
autocast than in fp32 (launch-bound at batch 4), on CPUs with AVX2 only bf16 matmuls crawl under
1 GFLOP/s, and on this project's bf16 CPUs the demo's d128 model ran 1.5x faster in fp32. So
before training, a few forward + backward passes of the run's own batches (a typical one and the
largest) are timed in every precision the hardware offers: fp32; TF32 matmuls on CUDA; bf16
autocast. The fastest is trained in. (bf16 weights with an fp32 master copy are not offered: the
Trainer has no such mode for a model loaded in fp32.)

The probe takes no optimizer step, clears the gradients and restores the random state, so the run
that follows is the one `precision: <choice>` would have made (tested: same final loss). Its
passes cost about a training step each, so it runs only where they are at most PROBE_SHARE of the
run's steps (16 passes: 800 steps with fp32 and bf16; 24 with TF32 on CUDA: 1,200); a shorter run
takes the fastest answer measured before on this device and model shape (a small cache file), or
fp32, the choice that is never far off, and says which.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("emosum.train")
PROBE_SHARE = 0.02   # the probe's passes, at most this share of the run's steps
TIMED = 3            # timed passes per batch and precision (the best counts), after one untimed warm-up pass
MARGIN = 0.05        # another precision must beat fp32 by this share to be chosen


def cache_file() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emosum" / "precision.json"


def _cpu_name() -> str:
    # platform.processor() is empty on most Linux systems; machines of one kind here differ in bf16
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.machine()


def device_key(model, device: str, batch: int) -> str:
    import torch

    from emosum import hf

    name = torch.cuda.get_device_name() if device == "cuda" else _cpu_name()
    name += ", bf16" if hf.bf16_available() else ", no bf16"
    c = model.config
    return (f"{device}:{name}:{torch.get_num_threads()}t|torch {torch.__version__}|d{c.d_model} "
            f"{c.num_layers}+{c.num_decoder_layers} v{c.vocab_size}|batch {batch}")


def candidates(device: str) -> list[str]:
    from emosum import hf

    out = ["fp32"]
    if device == "cuda":
        out.append("tf32")
    if hf.bf16_available():
        out.append("bf16")
    return out


def probe_batches(dataset, collator, batch: int) -> list[dict]:
    """A typical batch (examples around the median length) and the largest (the longest ones)."""
    lengths = dataset["length"]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    mid = max(0, len(order) // 2 - batch // 2)
    picks = [order[mid:mid + batch], order[-batch:]]
    return [collator([dataset[i] for i in p]) for p in picks]


def pass_seconds(model, batch: dict, device: str, mode: str, loss_fn) -> float:
    """Seconds of one forward + backward of `batch` in `mode`."""
    import torch

    from emosum.memory import forward_backward

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    tf32 = torch.backends.cuda.matmul.allow_tf32 if device == "cuda" else None
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    try:
        sync()
        t0 = time.perf_counter()
        forward_backward(model, batch, device, mode, loss_fn)
        model.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - t0
    finally:
        if device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32


def _best(samples: dict) -> float:
    """Mean over the batches of each batch's fastest pass."""
    return sum(min(ts) for ts in samples.values()) / len(samples)


def choose(model, batches: list[dict], device: str, steps: int, batch: int, loss_fn, timed: int = TIMED) -> dict:
    """Time each candidate precision and return {'choice', 's_per_pass', 'source', 'probe_s'}.

    The passes are interleaved (fp32, bf16, fp32, bf16, ...) and each batch's fastest pass counts:
    timed one precision after the other, whatever slows the machine for a few seconds (other work
    on its 2 cores) lands on one of them alone. A fresh clone's `dvc repro` measured fp32 at 0.445 s
    a pass that way (0.275 s in the runs before and after on that machine), chose bf16 (0.385 s),
    and trained at 0.48 s/step against fp32's 0.23."""
    from emosum.memory import untouched

    modes = candidates(device)
    key = device_key(model, device, batch)
    if len(modes) == 1:
        return {"choice": "fp32", "source": "only fp32 on this device", "s_per_pass": {}, "probe_s": 0.0}
    # A probe pass costs about what a training step does, so the probe fits in PROBE_SHARE of the
    # run when the run has enough steps; deciding by the step count costs no pass at all (timing
    # fp32 first to decide took 19 s of a 134 s run on long VCSum batches)
    passes = (1 + timed) * len(batches) * len(modes)
    if passes > PROBE_SHARE * steps:
        known = remembered(key)
        choice, source = (known, "the fastest measured before on this device") if known else \
            ("fp32", "no measurement for this device yet: fp32, never far off")
        log.info("precision auto: the run (%d steps) is too short to time every precision within %.0f%% of it "
                 "(its %d passes need a run of %.0f steps); %s: %s", steps, 100 * PROBE_SHARE, passes,
                 passes / max(PROBE_SHARE, 1e-9), source, choice)
        return {"choice": choice, "source": source, "s_per_pass": {}, "probe_s": 0.0}
    batches = [{k: v.to(device) for k, v in b.items()} for b in batches]
    from emosum import machine

    before = machine.Snapshot()
    t0 = time.perf_counter()
    samples = {m: {i: [] for i in range(len(batches))} for m in modes}
    with untouched(model, device):
        for i, b in enumerate(batches):
            for mode in modes:  # the first pass pays for allocation and kernel selection
                pass_seconds(model, b, device, mode, loss_fn)
        for r in range(timed):
            order = modes[r % len(modes):] + modes[:r % len(modes)]  # each goes first in turn
            for i, b in enumerate(batches):
                for mode in order:
                    samples[mode][i].append(pass_seconds(model, b, device, mode, loss_fn))
    timings = {m: _best(samples[m]) for m in modes}
    predicted_run = timings["fp32"] * steps
    fastest = min(timings, key=timings.get)
    # fp32 unless another is clearly faster: within the margin the exact one wins a tie
    choice = fastest if timings[fastest] < (1 - MARGIN) * timings["fp32"] else "fp32"
    busy = machine.busy_between(before)
    if busy:  # timings taken beside other work are this moment's, not the machine's: measured again next time
        log.warning("precision auto: the machine was busy while timing (%s): training in %s, but the choice is not "
                    "remembered as this machine's; the next run measures again", busy, choice)
    else:
        _remember(key, choice)
    probe_s = time.perf_counter() - t0
    log.info("precision auto: forward+backward of a typical and the largest batch (best of %d, interleaved): %s; "
             "training in %s (probe %.1f s, %.1f%% of the predicted run)", timed,
             ", ".join(f"{m} {t:.3f} s" for m, t in timings.items()), choice, probe_s,
             100 * probe_s / max(1e-9, predicted_run))
    return {"choice": choice, "source": "measured", "s_per_pass": {m: round(t, 4) for m, t in timings.items()},
            # each batch's best pass (typical, largest), for the time budget's step-time line
            "per_batch_s": {m: [round(min(ts), 5) for ts in samples[m].values()] for m in modes},
            "batch_tokens": [int(b["input_ids"].numel() + b["labels"].numel()) for b in batches],
            "probe_s": round(probe_s, 2), "busy": busy, "remembered": not busy}


def for_run(model, train_ds, collator, cfg, device: str, world: int, accum: int, run_dir: Path,
            resume: str | None, loss_fn) -> tuple[str, dict]:
    """The train stage's `precision: auto`: (choice, what metrics/train.json records). A resumed run
    keeps the precision its checkpoints were made in (saved in run_dir); several processes take the
    remembered answer for this device (each rank timing on its own could choose differently)."""
    import math

    from emosum import dataio

    if device == "cuda":
        model.to("cuda")  # where the Trainer puts it: time it there
    chosen = run_dir / "precision.json"
    if resume and chosen.is_file():
        info = json.loads(chosen.read_text(encoding="utf-8"))
        log.info("precision auto: %s, as the run being resumed chose", info["choice"])
        return info["choice"], info
    steps = cfg.max_steps if cfg.max_steps > 0 else \
        math.ceil(math.ceil(len(train_ds) / (cfg.batch_size * world * accum)) * cfg.epochs)
    if world > 1:
        known = remembered(device_key(model, device, cfg.batch_size))
        info = {"choice": known or "fp32", "source": "remembered" if known else "fp32 (several processes: not "
                "measured; a one-process run on this device measures and remembers)", "s_per_pass": {}, "probe_s": 0}
    else:
        info = choose(model, probe_batches(train_ds, collator, cfg.batch_size), device, steps, cfg.batch_size,
                      loss_fn)
    run_dir.mkdir(parents=True, exist_ok=True)
    dataio.write_json(chosen, info)
    return info["choice"], info


def remembered(key: str) -> str | None:
    """The fastest precision measured before for this device key, if any."""
    return _cached().get(key)


def _cached() -> dict:
    try:
        return json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _remember(key: str, choice: str) -> None:
    from emosum import dataio

    try:
        dataio.write_json(cache_file(), {**_cached(), key: choice})
    except OSError as e:  # a read-only home is no reason to fail a run
        log.warning("precision auto: could not remember the choice in %s (%s)", cache_file(), e)
