"""Peak training memory, predicted before the first step and measured at the end.

    predicted peak = memory in use before training (the process's RSS on a CPU: Python, torch,
                     the data, the fp32 weights; allocated tensors on a GPU)
                   + one forward and backward on the run's largest batches (activations and
                     gradients, measured: a probe, not a formula, because which tensors autograd
                     keeps depends on the model, the precision and the kernels)
                   + the optimizer state, which the first step allocates (AdamW: two fp32 moments
                     per parameter; Adafactor: factored, about 1 byte each)

The probe runs no optimizer step, clears the gradients and restores the random state, so the
run that follows is the run that would have been (tested: same final loss). On a CPU the peak is
read from the kernel's high-water mark (VmHWM), which the probe resets first through
/proc/self/clear_refs; where that is not possible the probe is skipped and the prediction says so.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

log = logging.getLogger("emosum.train")


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_high_water() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def available_bytes(device: str) -> int | None:
    """What the device can still give: free GPU memory, or MemAvailable plus this process's RSS."""
    import torch

    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return free + torch.cuda.memory_allocated()
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 + (_status_kb("VmRSS") or 0)
    except OSError:
        return None
    return None


def optimizer_bytes(model, optimizer: str) -> int:
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return n * (8 if optimizer.startswith("adamw") else 1)


@contextlib.contextmanager
def untouched(model, device: str):
    """Forward and backward passes that leave no trace: in train mode, then the gradients cleared
    and the mode and random state (dropout draws from it) as they were, so the run that follows is
    the run that would have been. Shared by this probe and the precision probe."""
    import torch

    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if device == "cuda" else None
    was_training = model.training
    model.train()
    try:
        yield
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def forward_backward(model, batch: dict, device: str, precision: str, loss_fn) -> None:
    """One training forward and backward of `batch` (on `device`), bf16 autocast if asked; the
    gradients stay for the caller to read or clear. Shared by this probe and the precision probe."""
    import torch

    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model(**{k: v for k, v in batch.items() if k != "labels"}, labels=batch["labels"])
        loss = loss_fn(out, batch["labels"])
    loss.backward()


def probe(model, batches: list[dict], precision: str, device: str, loss_fn) -> int | None:
    """Bytes one forward + backward of the largest of `batches` takes above what was in use."""
    import torch

    peak = 0
    with untouched(model, device):
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
            else:
                if not _reset_high_water():
                    return None
                before = _status_kb("VmRSS") or 0
            forward_backward(model, batch, device, precision, loss_fn)
            used = (torch.cuda.max_memory_allocated() if device == "cuda" else _status_kb("VmHWM") or 0) - before
            model.zero_grad(set_to_none=True)
            peak = max(peak, used)
    return peak


def peak_since_probe(device: str) -> int | None:
    """The peak since the probe reset the counters: the training's own peak. (getrusage's
    ru_maxrss also keeps peaks from before, such as loading and pruning a 250,112-row checkpoint.)"""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    return _status_kb("VmHWM")


def in_use(device: str) -> int:
    import torch

    if device == "cuda":
        return torch.cuda.memory_allocated()
    return _status_kb("VmRSS") or 0


def predict(model, batches: list[dict], precision: str, device: str, optimizer: str, loss_fn) -> dict:
    """The prediction, logged, with a warning when it exceeds what the device has."""
    if device == "cuda" and next(model.parameters()).device.type != "cuda":
        model.to("cuda")  # where the Trainer will put it; the probe measures there
    base = in_use(device)
    step = probe(model, batches, precision, device, loss_fn)
    if step is None:
        log.warning("memory: cannot read this process's peak memory here; no prediction")
        return {}
    opt = optimizer_bytes(model, optimizer)
    total = base + step + opt
    avail = available_bytes(device)
    info = {"predicted_peak_gb": round(total / 2 ** 30, 4), "before_training_gb": round(base / 2 ** 30, 4),
            "forward_backward_gb": round(step / 2 ** 30, 4), "optimizer_state_gb": round(opt / 2 ** 30, 4),
            "available_gb": round(avail / 2 ** 30, 2) if avail else None}
    log.info("memory: predicted peak %.2f GB = %.2f in use + %.2f forward/backward of the largest batch + "
             "%.2f optimizer state (%s available)", total / 2 ** 30, base / 2 ** 30, step / 2 ** 30,
             opt / 2 ** 30, f"{avail / 2 ** 30:.1f} GB" if avail else "unknown")
    if avail and total > avail:
        log.warning("memory: the run needs about %.1f GB but the %s has %.1f GB available: lower "
                    "train.batch_size (train.gradient_accumulation_steps keeps the effective batch), "
                    "tokenize.max_source_length, or use a smaller model", total / 2 ** 30, device,
                    avail / 2 ** 30)
    return info


def process_peak_gb() -> float:
    """The whole process's peak (loading included): CUDA's allocated peak, or ru_maxrss."""
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux
