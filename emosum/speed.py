"""Where the training time goes: a short report at the start of training and a prediction.

The prediction fits step time = a + b x padded tokens over the first timed steps of the real run
(at least 10 steps and 20 s; no extra compute; refitted once after 60 s), then sums that over
every batch of the run, whose shapes are known up front from one pass of the collator over the
training data. Length-grouped batches vary a lot in size, so a plain mean of the first steps (the
longest batches come first) would mislead.
"""
from __future__ import annotations

import logging
import random
import time

log = logging.getLogger("emosum.speed")
WARMUP_SKIP = 2   # the first steps pay for allocations and lazy initialisation
WARMUP_FIT = 10   # steps timed, at least, for the first fit
MIN_FIT_S = 20.0  # ... and seconds: this machine's speed drifts +-10% over seconds, so a 3 s window of
                  # fast steps predicted the default run 31% short; 20 s of them came within 5%
FIT_SHARE = 0.25  # ... unless a quarter of the run is already timed (short runs)
REFIT_AT = 50     # the fit is redone once on a longer window (transient load, warm-up) ...
REFIT_S = 60.0    # ... of at least this many seconds


def batch_shapes(dataloader, largest: list | None = None) -> list[tuple[int, int, int, int]]:
    """(batch, source len, target len, real tokens) of every batch of one epoch, collator only.
    `largest`, if given, receives the batches with the most padded tokens and with the largest
    attention maps (batch x source length squared): the memory probe's inputs."""
    shapes, most = [], {}
    for b in dataloader:
        labels = b["labels"]
        real = int(b["attention_mask"].sum()) + int((labels != -100).sum())
        shape = (labels.shape[0], b["input_ids"].shape[1], labels.shape[1], real)
        shapes.append(shape)
        if largest is not None:
            for key, size in (("tokens", padded(shape)), ("attention", shape[0] * shape[1] ** 2)):
                if size > most.get(key, (0, None))[0]:
                    most[key] = (size, b)
    if largest is not None:
        largest.extend({id(b): b for _, b in most.values()}.values())
    return shapes


def batches_at(dataloader, indices: list[int]) -> list[dict]:
    """The batches at these positions of one pass over the dataloader (collated again: its order is
    seeded by epoch, so the same batches as batch_shapes saw)."""
    want, out = set(indices), {}
    for i, b in enumerate(dataloader):
        if i in want:
            out[i] = b
        if len(out) == len(want):
            break
    return [out[i] for i in indices if i in out]


CPU_BF16_PAD = 16  # measured on the demo (AMD EPYC, bf16): epochs of passes held 1.05 GB padded, 1.6 -> 2.0 GB not


def pad_multiple(setting, precision: str, device: str) -> int | None:
    """train.pad_to_multiple_of resolved: `auto` pads to CPU_BF16_PAD tokens when training in bf16 on
    a CPU, where oneDNN keeps caches for every new batch shape, so memory grows and steps slow as a
    run meets more shapes (the default run met 344: its peak went from 1.0 to 2.6 GB, and the plan
    made from its first passes fell 57% short). Padded to 16, isolated passes over the default's
    epochs stayed at 1.05 GB and ran as fast (27.6 s an epoch against 27.7). fp32 keeps no such
    caches (flat at 1.08 GB unpadded): no padding there, nor on a GPU unless asked."""
    if setting != "auto":
        return setting
    return CPU_BF16_PAD if precision == "bf16" and device == "cpu" else None


def padded(shape) -> int:
    return shape[0] * (shape[1] + shape[2])


def random_batch_waste(src_lens: list[int], tgt_lens: list[int], batch: int, seed: int) -> float:
    """Padding waste had the batches been drawn at random (no length grouping)."""
    idx = list(range(len(src_lens)))
    random.Random(seed).shuffle(idx)
    real = pad = 0
    for i in range(0, len(idx), batch):
        chunk = idx[i:i + batch]
        real += sum(src_lens[j] + tgt_lens[j] for j in chunk)
        pad += len(chunk) * (max(src_lens[j] for j in chunk) + max(tgt_lens[j] for j in chunk))
    return 1 - real / max(1, pad)


def output_layer_share(model, src: float, tgt: float) -> float:
    """The LM head's share of the FLOPs per example: d x V for each target token, against the
    encoder's weights for each source token and the decoder's for each target token."""
    head = model.get_output_embeddings().weight.numel()
    enc = sum(p.numel() for n, p in model.named_parameters() if n.startswith("encoder.block"))
    dec = sum(p.numel() for n, p in model.named_parameters() if n.startswith("decoder.block"))
    return head * tgt / (enc * src + (dec + head) * tgt)


class StepTimer:
    """Start-to-start times of training steps (optimizer, data and logging included)."""

    def __init__(self):
        self.starts: list[float] = []
        self.tokens: list[int] = []   # padded source + target tokens of each step
        self.real: list[int] = []     # the same without padding
        self.fit: tuple[float, float] | None = None
        self.first_step = 0
        self.end: float | None = None  # when the last optimizer step finished
        self.on_ready = lambda fit, steps: None
        self.refitted = False

    def record(self, inputs) -> None:
        """No host sync here: on a GPU a step at batch 4 is launch-bound, and waiting for the device
        every step would idle it while the next step's kernels are queued. Start-to-start times of
        queued steps still sum to the wall time; the caller syncs once where a window closes. The
        real-token count stays a device tensor until it is read."""
        self.starts.append(time.perf_counter())
        self.tokens.append(inputs["input_ids"].numel() + inputs["labels"].numel())
        self.real.append(inputs["attention_mask"].sum() + (inputs["labels"] != -100).sum())

    def real_tokens(self, start: int = 0) -> int:
        """Real (non-padding) tokens of the steps from `start` on (one host sync)."""
        import torch

        return int(torch.stack(self.real[start:]).sum()) if len(self.real) > start else 0

    def steady(self, end: float) -> dict:
        """s/step and real tokens/s after the first WARMUP_SKIP steps, up to `end` (a clock time);
        and how the fitted line predicts the steps actually run."""
        n = len(self.starts)
        if n <= WARMUP_SKIP + 1:
            return {}
        times = self.starts[WARMUP_SKIP:] + [end]
        span = times[-1] - times[0]
        out = {"steady_steps": n - WARMUP_SKIP, "steady_s_per_step": round(span / (n - WARMUP_SKIP), 4),
               "steady_tokens_per_s": round(self.real_tokens(WARMUP_SKIP) / span, 1)}
        half = n // 2  # the second half alone: a compiled run's first steps also pay for compiling
        if n - half >= 2:
            out["late_s_per_step"] = round((times[-1] - self.starts[half]) / (n - half), 4)
        if self.fit:
            a, b = self.fit
            out["prediction_check"] = {"steps": n - WARMUP_SKIP, "actual_s": round(span, 2), "predicted_s":
                                       round(sum(a + b * t for t in self.tokens[WARMUP_SKIP:]), 2)}
        return out

    def ready(self, planned: int) -> bool:
        """Time for the first fit, or for the one refit; `planned` is the micro-steps of this run."""
        timed = len(self.starts) - 1 - WARMUP_SKIP  # complete steps after the skipped ones
        span = self.starts[-1] - self.starts[WARMUP_SKIP] if timed > 0 else 0.0
        if self.fit is None:
            return timed >= WARMUP_FIT and (span >= MIN_FIT_S or timed >= FIT_SHARE * planned)
        if not self.refitted and timed >= REFIT_AT and span >= REFIT_S:
            self.refitted = True
            return True
        return False

    def fit_line(self) -> tuple[float, float]:
        """Least squares of step seconds on padded tokens over the steps timed so far."""
        end = len(self.starts) - 1
        dts = [self.starts[i + 1] - self.starts[i] for i in range(WARMUP_SKIP, end)]
        xs = self.tokens[WARMUP_SKIP:end]
        mx, my = sum(xs) / len(xs), sum(dts) / len(dts)
        var = sum((x - mx) ** 2 for x in xs)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, dts)) / var if var > 0 else 0.0
        a = my - b * mx
        if a < 0 or b < 0:  # noisy window: fall back to time proportional to tokens
            a, b = 0.0, my / mx
        self.fit = (a, b)
        return self.fit


def predict_total(fit: tuple[float, float], shapes, steps_total: int) -> float:
    a, b = fit
    per_epoch = [a + b * padded(s) for s in shapes]
    full, rest = divmod(steps_total, len(per_epoch))
    return full * sum(per_epoch) + sum(per_epoch[:rest])


def report(model, precision: str, device: str, threads: int, shapes, src_lens, tgt_lens, batch: int,
           seed: int, grouped: bool, max_source_length: int | None, pruned: bool, measured: bool = False) -> dict:
    import torch

    real = sum(s[3] for s in shapes)
    pad = sum(padded(s) for s in shapes)
    mean_src = sum(s[1] for s in shapes) / len(shapes)
    mean_tgt = sum(s[2] for s in shapes) / len(shapes)
    vocab = model.get_output_embeddings().weight.shape[0]
    info = {
        "device": device, "threads": threads, "precision": precision, "vocab_size": vocab,
        "output_layer_flops_share": round(output_layer_share(model, mean_src, mean_tgt), 3),
        "padding_waste": round(1 - real / max(1, pad), 3),
        "padding_waste_random_batches": round(random_batch_waste(src_lens, tgt_lens, batch, seed), 3),
        "batches_per_epoch": len(shapes),
    }
    warnings = []
    if torch.cuda.is_available() and device == "cpu":
        warnings.append("a CUDA device is present but training runs on the CPU")
    if precision == "fp16":
        warnings.append("fp16 on a T5-family model overflows and gives NaN loss; use bf16 or fp32")
    if max_source_length and all(s[1] == max_source_length for s in shapes):
        warnings.append(f"every batch is padded to max_source_length {max_source_length}: the data is "
                        "longer than the limit, or padding is fixed; lower it or use `auto`")
    if vocab > 64_000 and not pruned:
        warnings.append(f"vocabulary of {vocab:,} ids with pruning off: the output layer is "
                        f"{100 * info['output_layer_flops_share']:.0f}% of the FLOPs; set tokenize.prune_vocab")
    if precision == "fp32" and device == "cuda" and torch.cuda.is_bf16_supported() and not measured:
        warnings.append("this GPU supports bf16 but training runs in fp32; set train.precision: auto to "
                        "measure which is faster")
    log.info("speed report: %s on %d threads, %s; vocabulary %d (output layer %.0f%% of FLOPs); "
             "padding waste %.0f%% (%.0f%% with random batches%s)", device, threads, precision, vocab,
             100 * info["output_layer_flops_share"], 100 * info["padding_waste"],
             100 * info["padding_waste_random_batches"], "; length-grouped" if grouped else "")
    for w in warnings:
        log.warning("speed: %s", w)
    info["warnings"] = warnings
    return info
