"""Data-parallel training: the train stage relaunches itself through torchrun.

One code path for 1 and N processes: the Trainer's own distributed support (DDP through
Accelerate: NCCL on GPUs, gloo on CPUs), not a loop of ours. torchrun rather than `accelerate
launch` for the plain case: accelerate runs several CPU processes only through mpirun, while
torchrun starts N CPU or GPU processes alike. `train.accelerate_config` still goes through
`accelerate launch` (DeepSpeed, FSDP and other set-ups it describes). The global batch stays what the
params say whatever the process count, so the optimizer steps, the learning-rate schedule and
the metrics keys match a 1-process run:

    global_batch_size = batch_size x processes (all machines) x gradient accumulation
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys

log = logging.getLogger("emosum.launch")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


LAUNCHED = "EMOSUM_LAUNCHED"


def launched() -> bool:
    """True inside a process that relaunch() started (never relaunch twice)."""
    return LAUNCHED in os.environ or "LOCAL_RANK" in os.environ


def accumulation(cfg, processes: int) -> int:
    """Gradient accumulation that keeps train.global_batch_size for this many processes."""
    if cfg.global_batch_size is None:
        return cfg.gradient_accumulation_steps
    per_step = cfg.batch_size * processes
    if cfg.global_batch_size % per_step:
        raise ValueError(f"params.yaml: train.global_batch_size: {cfg.global_batch_size} is not a multiple of "
                         f"train.batch_size {cfg.batch_size} x {processes} processes; change one of them")
    return cfg.global_batch_size // per_step


def total_processes(cfg) -> int:
    return cfg.num_processes * cfg.num_machines


def command(cfg, module: str) -> list[str]:
    """The launcher command that runs `python -m module` in this machine's processes."""
    if cfg.accelerate_config:
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", cfg.accelerate_config,
                "-m", module]
    if cfg.num_machines > 1 and not cfg.main_process_ip:
        raise ValueError("params.yaml: train.main_process_ip: set it to machine 0's address for a "
                         f"{cfg.num_machines}-machine run")
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(cfg.num_processes),
            "--nnodes", str(cfg.num_machines), "--node_rank", str(cfg.machine_rank),
            "--master_addr", cfg.main_process_ip or "127.0.0.1", "--master_port", str(cfg.main_process_port),
            "-m", module]


def relaunch(cfg, module: str) -> int:
    """Run this stage again under `accelerate launch`; any rank's failure fails the stage."""
    import torch

    cmd = command(cfg, module)
    env = dict(os.environ, **{LAUNCHED: "1"})
    if not torch.cuda.is_available():
        # N CPU processes share the cores: one thread block each instead of N x all cores
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // cfg.num_processes)))
    log.info("launching %d processes on machine %d of %d: %s", cfg.num_processes, cfg.machine_rank,
             cfg.num_machines, " ".join(cmd))
    return subprocess.run(cmd, env=env).returncode
