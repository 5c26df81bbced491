"""Which Trainer checkpoint to resume from, and what a checkpoint costs on disk.

A kill, a full disk or a bad sector can leave the newest checkpoint damaged: weights cut short,
the optimizer state or the trainer state missing or unreadable. Resuming from it used to end in
a safetensors traceback although an intact checkpoint lay beside it. The checks here are cheap:
file sizes against the safetensors header, the zip directory at the end of each torch file, a
JSON load of the trainer state; no tensor is read. A damaged folder is renamed aside
(`damaged-checkpoint-N`, kept for inspection, ignored by the Trainer's rotation) and the resume
takes the newest intact one.
"""
from __future__ import annotations

import json
import logging
import shutil
import struct
import zipfile
from pathlib import Path

log = logging.getLogger("emosum.train")

TORCH_FILES = ("optimizer.pt", "scheduler.pt")  # torch.save writes zip archives: truncation breaks the directory


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    if size < 8:
        return f"{path.name} is {size} bytes"
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if 8 + n > size:
            return f"{path.name} is cut short ({size:,} bytes, its header alone needs {8 + n:,})"
        try:
            header = json.loads(fh.read(n))
        except ValueError:
            return f"{path.name} has an unreadable header"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        return f"{path.name} is {'cut short' if size < 8 + n + end else 'longer than its header says'} " \
               f"({size:,} bytes; its header describes {8 + n + end:,})"
    return None


def problem(ckpt: Path) -> str | None:
    """Why this checkpoint cannot be resumed from, or None when it looks whole."""
    state = ckpt / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json is missing (the save did not finish)"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (ValueError, KeyError, UnicodeDecodeError):
        return "trainer_state.json is unreadable"
    weights = sorted(ckpt.glob("model*.safetensors"))
    if not weights:
        return "no model*.safetensors"
    for w in weights:
        if why := _safetensors_problem(w):
            return why
    for name in TORCH_FILES:
        f = ckpt / name
        if not f.is_file():
            return f"{name} is missing"
        if not zipfile.is_zipfile(f):
            return f"{name} is unreadable (cut short or not a torch file)"
    return None


def newest_intact(run_dir: Path, rename: bool = True) -> str | None:
    """The newest checkpoint-N in run_dir that is whole; damaged ones are named and (by the one
    process that may) renamed aside."""
    if not run_dir.is_dir():
        return None
    found = sorted((p for p in run_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[1].isdigit()),
                   key=lambda p: int(p.name.split("-")[1]), reverse=True)
    for ckpt in found:
        try:
            why = problem(ckpt)
        except OSError as e:  # another process moved it aside meanwhile, or the disk failed
            why = f"unreadable ({e})"
        if why is None:
            return str(ckpt)
        if not rename:
            continue
        aside = ckpt.with_name("damaged-" + ckpt.name)
        shutil.rmtree(aside, ignore_errors=True)
        ckpt.rename(aside)
        log.warning("skipping checkpoint %s: %s; moved to %s", ckpt, why, aside.name)
    if found:
        log.warning("no intact checkpoint in %s: starting fresh", run_dir)
    return None


def size_bytes(n_params: int, optimizer: str) -> int:
    """What one checkpoint takes: fp32 weights, plus AdamW's two moments (Adafactor's factored
    state is small), plus a little for the scheduler, RNG and trainer state."""
    per_param = 4 + (8 if optimizer.startswith("adamw") else 1)
    return n_params * per_param + 1_000_000


def check_space(run_dir: Path, n_params: int, optimizer: str, keep: int) -> dict:
    """Warn before training when the scratch filesystem cannot hold the checkpoints: `keep` of
    them plus the one being written before the oldest is rotated out."""
    need = (keep + 1) * size_bytes(n_params, optimizer)
    probe = run_dir
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        log.warning("checkpoints need about %.0f MB in %s (%d x %.0f MB) but only %.0f MB are free: free space "
                    "or the run will stop at a save (it resumes from the last checkpoint once there is room)",
                    need / 1e6, run_dir, keep + 1, size_bytes(n_params, optimizer) / 1e6, free / 1e6)
    return {"checkpoint_mb": round(size_bytes(n_params, optimizer) / 1e6, 1), "checkpoints_need_mb": round(need / 1e6, 1),
            "scratch_free_mb": round(free / 1e6, 1)}


def no_space_message(e: OSError, run_dir: Path, step: int, disk: dict, keep: int) -> str:
    """What a full disk at a checkpoint save tells the user (disk: check_space's figures)."""
    last = newest_intact(run_dir)
    return (f"no space left on the device while writing {e.filename or run_dir} at step {step}: a checkpoint "
            f"takes about {disk['checkpoint_mb']:.0f} MB and {keep + 1} may exist at once "
            f"({disk['checkpoints_need_mb']:.0f} MB; {shutil.disk_usage(run_dir).free / 1e6:.0f} MB free now). "
            f"Free space on that filesystem and rerun `dvc repro`: it resumes from "
            f"{last or 'the start (no intact checkpoint yet)'}.")
