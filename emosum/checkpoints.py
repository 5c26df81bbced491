"""Which Trainer checkpoint to resume from, and what a checkpoint costs on disk.

A kill, a full disk or a bad sector can leave the newest checkpoint damaged: weights cut short,
the optimizer state or the trainer state missing or unreadable. Resuming from it used to end in
a safetensors traceback although an intact checkpoint lay beside it. The checks here are cheap:
file sizes against the safetensors header, the zip directory at the end of each torch file
(optimizer, scheduler, random state), a JSON load of the trainer state; no tensor is read. A
damaged folder is renamed aside (`damaged-checkpoint-N`, kept for inspection, ignored by the
Trainer's rotation) and the resume takes the newest intact one.

The Trainer writes a checkpoint's files one after the other into its final folder. So a save is
made atomic the way a database commits: once every file is written, `emosum_state.json` is
written (itself atomically) listing each file and its size, with the run's own state (the time
spent, the time budget's schedule); a folder without it, or whose files differ from it, was not
finished and is never resumed from.
"""
from __future__ import annotations

import errno
import json
import logging
import shutil
import struct
import zipfile
from pathlib import Path

log = logging.getLogger("emosum.train")

TORCH_FILES = ("optimizer.pt", "scheduler.pt")  # torch.save writes zip archives: truncation breaks the directory
STATE = "emosum_state.json"  # the commit record, written last


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
    rng = sorted(p.name for p in ckpt.glob("rng_state*.pth"))
    if not rng:
        return "rng_state.pth is missing (the random state: without it the rest of the run draws other numbers)"
    for name in (*TORCH_FILES, *rng):
        f = ckpt / name
        if not f.is_file():
            return f"{name} is missing"
        if not zipfile.is_zipfile(f):
            return f"{name} is unreadable (cut short or not a torch file)"
    record = ckpt / STATE
    if not record.is_file():
        return f"{STATE} is missing (the save did not finish)"
    try:
        files = json.loads(record.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"{STATE} is unreadable"
    for name, size in files.items():
        f = ckpt / name
        if not f.is_file() or f.stat().st_size != size:
            return f"{name} differs from what {STATE} recorded at the save"
    return None


def read_state(ckpt: str | None) -> dict:
    """The run state saved with a checkpoint (time spent, the budget's schedule), or {}."""
    if not ckpt:
        return {}
    try:
        return json.loads((Path(ckpt) / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def state_writer(extra):
    """A TrainerCallback that commits each checkpoint once the Trainer has written it: STATE with
    every file's size and `extra()` (a dict of the run's own state)."""
    from transformers import TrainerCallback

    from emosum import dataio

    class Commit(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if not ckpt.is_dir():
                return
            files = {p.relative_to(ckpt).as_posix(): p.stat().st_size for p in sorted(ckpt.rglob("*"))
                     if p.is_file() and p.name != STATE}
            dataio.write_json(ckpt / STATE, {"format": 1, "step": state.global_step, **extra(), "files": files})

    return Commit()


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


def out_of_space(e: BaseException, folder: Path, need: int) -> bool:
    """Whether a save failed because the filesystem is full. torch's zip writer does not raise
    ENOSPC: a full disk surfaces as `RuntimeError: [enforce fail at inline_container.cc:...]
    unexpected pos ...` (seen on a 40 MB filesystem), and safetensors has its own errors. So an
    OSError with ENOSPC/EDQUOT counts, and any other error does when the folder's filesystem has
    less free space left than the save needed."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "No space left on device" in str(e) or "os error 28" in str(e):  # tokenizers' Rust io::Error
        return True
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free < need
    except OSError:
        return False


def discard_unfinished(run_dir: Path, step: int) -> str | None:
    """Remove checkpoint-<step> if its save did not finish (frees the space it took); its name."""
    ckpt = Path(run_dir) / f"checkpoint-{step}"
    if ckpt.is_dir() and not (ckpt / STATE).is_file():
        shutil.rmtree(ckpt, ignore_errors=True)
        return ckpt.name
    return None


def no_space_message(e: BaseException, run_dir: Path, step: int, disk: dict, keep: int) -> str:
    """What a full disk at a checkpoint save tells the user (disk: check_space's figures)."""
    gone = discard_unfinished(run_dir, step)
    last = newest_intact(run_dir)
    where = getattr(e, "filename", None) or (Path(run_dir) / f"checkpoint-{step}")
    return (f"no space left on the device while writing {where} at step {step}"
            f"{f' (the half-written {gone} was removed)' if gone else ''}: a checkpoint "
            f"takes about {disk['checkpoint_mb']:.0f} MB and {keep + 1} may exist at once "
            f"({disk['checkpoints_need_mb']:.0f} MB; {shutil.disk_usage(run_dir).free / 1e6:.0f} MB free now). "
            f"Free space on that filesystem and rerun `dvc repro`: it resumes from "
            f"{last or 'the start (no intact checkpoint yet)'}.")
