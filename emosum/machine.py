"""What the machine does besides this run: the share of its cores this run takes, the other load on
it, and why a run is slow.

Every torch process sizes its thread pool to the whole machine. Two trainings on the same 2 cores
then fight (OpenMP threads busy-wait for each other) and each ran 3.9x slower than alone, where
half speed was the most it should lose; with one thread each the pair beat running them one after
the other (issue 23's table). So each training and evaluation registers itself in a small folder
of JSON files (one per process, removed when it ends; a dead process's file is ignored and
cleaned) and takes an equal share of the cores the live ones leave. A run already going adopts
its new share when another starts or ends (`torch.set_num_threads` between steps): the share is
decided at start and logged, and every change is logged and recorded.

psutil reads what the machine shows (processes, CPU, swap, steal); a GPU's use comes from
torch.cuda (NVML), where there is one.

Written by hand: no library we found shares cores between independent processes (the OpenMP
runtime and torch only size one process's pool); the registry is a few files under a lock.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("emosum.machine")

THREADS_ENV = "EMOSUM_THREADS"  # a fixed thread count for this run (others count it); OMP_NUM_THREADS likewise
SHARE_ENV = "EMOSUM_SHARE_CORES"  # "0": take the whole machine as before (the benchmark's "today" row)
BUSY_SHARE = 0.25   # other processes using more than this share of the cores make a measurement "busy"
MIN_PROC_CORES = 0.05  # a process under this many cores is not named


def cores() -> int:
    """The cores this process may run on (its affinity: a container's or taskset's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def registry_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "emosum" / "running"


def _alive(entry: dict) -> bool:
    import psutil

    try:
        proc = psutil.Process(entry["pid"])
        # a killed run is a zombie until something reaps it (an orphan waits for the init process,
        # which in a container may take seconds, or never): it holds no cores
        return abs(proc.create_time() - entry["created"]) < 1.0 and \
            proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except (psutil.Error, KeyError, TypeError):
        return False


def _fixed_threads() -> tuple[int | None, str | None]:
    for var in (THREADS_ENV, "OMP_NUM_THREADS"):
        v = os.environ.get(var, "").strip()
        if v.isdigit() and int(v) > 0:
            return int(v), var
    return None, None


_ACTIVE: list = []  # the Share this process is running under, if any (see rebalance())


def rebalance() -> None:
    """Between batches of long work (generation): adopt a new share if the active one changed."""
    if _ACTIVE:
        _ACTIVE[-1].rebalance()


class Share:
    """This process's share of the cores among the emosum runs on the machine (see the module's
    docstring). Use as a context manager around a stage's work; `rebalance()` between steps."""

    CHECK_EVERY_S = 5.0

    def __init__(self, stage: str, folder: Path | None = None):
        self.stage, self.folder = stage, folder or registry_dir()
        self.fixed, self.fixed_by = _fixed_threads()
        self.enabled = os.environ.get(SHARE_ENV, "1") != "0"
        self.threads: int | None = None
        self.changes: list[dict] = []
        self.started_with: dict = {}
        self._last_check = 0.0
        self._file: Path | None = None

    # the registry -------------------------------------------------------------------------------------
    def _lock(self):
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.folder / ".lock"), timeout=30)

    def peers(self) -> list[dict]:
        """The other live emosum runs registered on this machine; dead ones' files are removed."""
        out = []
        for f in self.folder.glob("*.json") if self.folder.is_dir() else []:
            try:
                e = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if e.get("pid") == os.getpid():
                continue
            if _alive(e):
                out.append(e)
            else:
                f.unlink(missing_ok=True)
        return out

    def decide(self, peers: list[dict]) -> int:
        """Threads for this process: fixed ones if set, else an equal share of what fixed peers leave."""
        if self.fixed:
            return self.fixed
        if not self.enabled:
            return cores()
        taken = sum(p["threads"] for p in peers if p.get("fixed"))
        flexible = 1 + sum(1 for p in peers if not p.get("fixed"))
        return max(1, (cores() - taken) // flexible)

    def _write(self) -> None:
        import psutil

        from emosum import dataio

        self._file = self.folder / f"{os.getpid()}.json"
        dataio.write_json(self._file, {"pid": os.getpid(), "created": psutil.Process().create_time(),
                                       "stage": self.stage, "cwd": os.getcwd(), "threads": self.threads,
                                       "fixed": bool(self.fixed) or not self.enabled})

    def __enter__(self) -> "Share":
        import torch

        try:
            with self._lock():
                peers = self.peers()
                self.threads = self.decide(peers)
                self._write()
        except Exception as e:  # noqa: BLE001 - a read-only cache or a stuck lock is no reason to fail a run
            peers, self.threads = [], self.decide([])
            log.warning("core share: could not register in %s (%s); taking %d threads", self.folder, e, self.threads)
        torch.set_num_threads(self.threads)
        why = (f"{self.fixed_by}={self.fixed}" if self.fixed else
               "sharing off (%s=0)" % SHARE_ENV if not self.enabled else
               f"{len(peers)} other emosum run(s) here" if peers else "no other emosum run here")
        self.started_with = {"threads": self.threads, "cores": cores(), "other_runs": len(peers), "why": why}
        log.info("core share: %d of %d cores' threads for this %s (%s%s)", self.threads, cores(), self.stage, why,
                 "".join(f"; pid {p['pid']} {p['stage']} {p['threads']} threads" for p in peers))
        self._last_check = time.monotonic()
        _ACTIVE.append(self)
        return self

    def rebalance(self, force: bool = False) -> int | None:
        """Adopt a new share when runs started or ended since (at most every CHECK_EVERY_S); returns
        the new thread count when it changed."""
        now = time.monotonic()
        if self.fixed or not self.enabled or self._file is None or (not force and now - self._last_check
                                                                      < self.CHECK_EVERY_S):
            return None
        self._last_check = now
        try:
            with self._lock():
                peers = self.peers()
                new = self.decide(peers)
                if new == self.threads:
                    return None
                old, self.threads = self.threads, new
                self._write()
        except Exception:  # noqa: BLE001 - keep the share we have
            return None
        import torch

        torch.set_num_threads(new)
        self.changes.append({"after_s": None, "from": old, "to": new, "other_runs": len(peers)})
        log.info("core share: %d -> %d threads (%d other emosum run(s) now: %s)", old, new, len(peers),
                 ", ".join(f"pid {p['pid']} {p['stage']}" for p in peers) or "none")
        return new

    def __exit__(self, *exc) -> None:
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self._file is not None:
            try:
                with self._lock():
                    self._file.unlink(missing_ok=True)
            except Exception:  # noqa: BLE001
                self._file.unlink(missing_ok=True)
            self._file = None

    def record(self) -> dict:
        # the count beside the list: `dvc exp show` / `dvc metrics` keep numbers and drop lists
        return {**self.started_with, "threads_at_end": self.threads, "thread_changes": len(self.changes),
                "changes": self.changes}

    def callback(self, clock=time.monotonic):
        """A TrainerCallback that rebalances between steps."""
        from transformers import TrainerCallback

        share, t0 = self, clock()

        class ShareCallback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if share.rebalance() is not None:
                    share.changes[-1].update(after_s=round(clock() - t0, 1), step=state.global_step)

        return ShareCallback()


# what else runs ---------------------------------------------------------------------------------------
def _mine() -> set[int]:
    """This process, its forked workers (data loader workers: the same command line) and its
    parents (dvc, the shell): not 'others'. Any other child (a program it started) counts."""
    import psutil

    me = psutil.Process()
    pids = {me.pid}
    try:
        mine = me.cmdline()
        pids |= {c.pid for c in me.children(recursive=True) if c.cmdline() == mine}
        pids |= {p.pid for p in me.parents()}
    except psutil.Error:
        pass
    return pids


def _label(p) -> str:
    import psutil

    try:
        cmd = " ".join(" ".join(p.cmdline()).split()) or p.name()
    except psutil.Error:
        cmd = "?"
    return f"{p.info['name'] if hasattr(p, 'info') else p.name()} (pid {p.pid}: {cmd[:70]})"


class Snapshot:
    """CPU times of every process and of the machine (with steal), and swap traffic, at one moment;
    two snapshots give what ran in between."""

    def __init__(self):
        import psutil

        self.t = time.monotonic()
        self.procs: dict[int, tuple[float, object]] = {}
        for p in psutil.process_iter(["name", "cpu_times", "num_threads"]):
            ct = p.info.get("cpu_times")
            if ct is not None:
                self.procs[p.pid] = (ct.user + ct.system, p)
        self.cpu = psutil.cpu_times()
        sw = psutil.swap_memory()
        self.swap_bytes = sw.sin + sw.sout

    def others_since(self, before: "Snapshot", exclude: set[int] | None = None) -> list[tuple[str, float, int]]:
        """(label, cores used, threads) of the other processes between `before` and this snapshot,
        busiest first."""
        exclude = _mine() if exclude is None else exclude
        dt = max(1e-6, self.t - before.t)
        out = []
        for pid, (cpu, p) in self.procs.items():
            if pid in exclude or pid not in before.procs:
                continue
            used = (cpu - before.procs[pid][0]) / dt
            if used >= MIN_PROC_CORES:
                out.append((_label(p), used, p.info.get("num_threads") or 1))
        return sorted(out, key=lambda x: -x[1])

    def steal_share(self, before: "Snapshot") -> float:
        total = sum(self.cpu) - sum(before.cpu)
        return max(0.0, getattr(self.cpu, "steal", 0.0) - getattr(before.cpu, "steal", 0.0)) / total if total > 0 \
            else 0.0

    def swap_mb_s(self, before: "Snapshot") -> float:
        return (self.swap_bytes - before.swap_bytes) / 2 ** 20 / max(1e-6, self.t - before.t)


def other_load(seconds: float = 1.0) -> tuple[float, list[tuple[str, float, int]]]:
    """(cores used by other processes, the busiest of them) over the next `seconds`."""
    a = Snapshot()
    time.sleep(seconds)
    others = Snapshot().others_since(a)
    return sum(u for _, u, _ in others), others


def describe(others: list[tuple[str, float, int]], limit: int = 3) -> str:
    return "; ".join(f"{label} {used:.2f} cores" for label, used, _ in others[:limit])


def busy_between(before: Snapshot, after: Snapshot | None = None) -> str | None:
    """A line saying what else took the machine between two snapshots (a measurement's start and
    end), when other processes used more than BUSY_SHARE of its cores; None when it was quiet."""
    others = (after or Snapshot()).others_since(before)
    used = sum(u for _, u, _ in others)
    if used > BUSY_SHARE * cores():
        return f"other processes used {used:.1f} of {cores()} cores ({describe(others)})"
    return None


def busy(seconds: float = 1.0) -> str | None:
    """busy_between over the next `seconds`."""
    a = Snapshot()
    time.sleep(seconds)
    return busy_between(a)


def before_start(stage: str, seconds: float = 0.25) -> str | None:
    """At a stage's start: one line when other processes already take (nearly) all the cores, with
    what is running. A quarter of a second of CPU times: the load average lags a minute behind."""
    used, others = other_load(seconds)
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if used >= cores() - 0.5:
        line = (f"the machine is already loaded as the {stage} starts: other processes use {used:.1f} of {cores()} "
                f"cores, load average {load1:.1f} ({describe(others) or 'short-lived processes'}); going on, slower "
                "than alone")
        log.warning("%s", line)
        return line
    return None


# why a run is slow ------------------------------------------------------------------------------------
SLOW_FACTOR = 2.0   # a stretch this much slower than the step time measured before training ...
SLOW_FOR_S = 60.0   # ... for this long is slow
WATCH_EVERY_S = 10.0


def diagnose(before: Snapshot, now: Snapshot, threads: int, device: str, own_cores: float) -> list[tuple[str, str]]:
    """(cause key, line: the likely cause and what to do) from what the machine shows between two
    snapshots. Several causes may hold; the first is the likeliest."""
    n = cores()
    out = []
    others = now.others_since(before)
    used = sum(u for _, u, _ in others)
    if used > 0.5:
        emo = [o for o in others if "stages." in o[0] or "emosum" in o[0]]
        what = ("stop them or wait; several emosum runs should run as `dvc queue start -j N`, which shares the "
                "cores" if not emo else "other emosum runs: they share the cores from their next steps; "
                "for several runs use `dvc queue start -j N` rather than runs side by side")
        out.append(("other_processes", f"other processes take {used:.1f} of {n} cores: {describe(others)}; {what}"))
    busy_threads = threads + sum(min(t, max(1, round(u))) for _, u, t in others)
    if busy_threads > n and used > 0.5:
        out.append(("threads", f"{busy_threads} busy threads on {n} cores (this run {threads}): threads that wait on "
                    "each other lose far more than their share; give each run its share (EMOSUM_THREADS or "
                    "OMP_NUM_THREADS)"))
    elif threads > n:
        out.append(("threads", f"this run has {threads} threads on {n} cores: set EMOSUM_THREADS={n}"))
    swap = now.swap_mb_s(before)
    if swap > 1.0:
        out.append(("swap", f"the machine swaps ({swap:.0f} MB/s): memory is short; lower train.batch_size or "
                    "max_source_length, or stop what takes the memory"))
    steal = now.steal_share(before)
    if steal > 0.1:
        out.append(("steal", f"{100 * steal:.0f}% of the CPU time is stolen by the hypervisor: the virtual "
                    "machine shares its host; nothing in this run can fix it, a quieter machine can"))
    if device == "cuda":
        try:
            import torch

            util = torch.cuda.utilization()
            if util < 30:
                out.append(("gpu_idle", f"the GPU is {util}% busy: it waits on the CPU side (data loading, "
                            "logging, small batches); raise train.batch_size or dataloader workers"))
        except Exception:  # noqa: BLE001 - no NVML
            pass
    if own_cores < 0.5 * min(threads, n) and not out:
        out.append(("waiting", f"this run uses {own_cores:.1f} cores of its {threads} threads: it waits (the data "
                    "loader, the disk, a lock) rather than computes; check disk speed and dataloader workers"))
    if not out:
        out.append(("unknown", "no other load, swapping or steal seen: the CPU may be throttled (heat, power) or "
                    "the batches grew; compare `s_per_step` with a run alone"))
    return out


class SlowWatch:
    """Compares each stretch of steps with the step time measured before the first step
    (`expected(tokens)`: seconds a step of that many padded tokens should take) and, when the
    last SLOW_FOR_S of steps ran more than SLOW_FACTOR x slower, logs the likely cause once per
    cause. Reads the step timer's start times; costs two process listings per WATCH_EVERY_S."""

    def __init__(self, timer, expected, threads: int, device: str, factor: float | None = None,
                 window_s: float | None = None, every_s: float | None = None, share: Share | None = None):
        self.timer, self.expected, self.threads, self.device, self.share = timer, expected, threads, device, share
        self.factor = factor or SLOW_FACTOR  # the module's values at the time (tests shorten them)
        self.window_s, self.every_s = window_s or SLOW_FOR_S, every_s or WATCH_EVERY_S
        self.reference = getattr(expected, "source", None)
        self.said: dict[str, str] = {}
        self.events: list[dict] = []
        self.worst = 0.0
        self._snap: Snapshot | None = None
        self._own: tuple[float, float] | None = None
        self._last = 0.0

    def slowdown(self) -> float | None:
        """Actual over expected seconds of the steps within the last window_s (None before a full window)."""
        from emosum import speed

        st = self.timer.starts
        if self.expected is None or len(st) < speed.WARMUP_SKIP + 3:
            return None
        end, i = len(st) - 1, len(st) - 2
        while i > speed.WARMUP_SKIP and st[end] - st[i] < self.window_s:
            i -= 1
        if st[end] - st[i] < self.window_s:
            return None
        want = [self.expected(t) for t in self.timer.tokens[i:end]]
        if any(w is None for w in want) or sum(want) <= 0:
            return None
        return (st[end] - st[i]) / sum(want)

    def check(self, step: int = 0) -> list[str]:
        import psutil

        now = time.monotonic()
        if now - self._last < self.every_s:
            return []
        self._last = now
        snap, me = Snapshot(), psutil.Process().cpu_times()
        own_now = (now, me.user + me.system)
        before, own_before = self._snap, self._own
        self._snap, self._own = snap, own_now
        ratio = self.slowdown()
        if ratio is not None:
            self.worst = max(self.worst, ratio)
        if ratio is None or ratio <= self.factor or before is None:
            return []
        threads = self.share.threads if self.share and self.share.threads else self.threads
        own = (own_now[1] - own_before[1]) / max(1e-6, own_now[0] - own_before[0])
        lines = []
        for key, line in diagnose(before, snap, threads, self.device, own):
            if key in self.said:
                continue
            self.said[key] = line
            msg = (f"slow run: the last {self.window_s:.0f} s of steps took {ratio:.1f}x the step time measured "
                   f"before training (step {step}); likely cause: {line}")
            log.warning("%s", msg)
            self.events.append({"step": step, "slowdown": round(ratio, 2), "cause": key, "line": line})
            lines.append(msg)
        return lines

    def record(self) -> dict:
        return {"worst_slowdown": round(self.worst, 2) if self.worst else None, "causes_named": len(self.events),
                "events": self.events}

    def callback(self):
        from transformers import TrainerCallback

        watch = self

        class SlowWatchCallback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                watch.check(state.global_step)

        return SlowWatchCallback()
