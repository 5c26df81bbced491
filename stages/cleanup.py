"""Stage 5: remove scratch files (Trainer checkpoints) and report what the run costs on disk.

    python -m stages.cleanup              # what `dvc repro cleanup` runs

Reads params `cleanup.paths`: an explicit allowlist of scratch paths, relative to the repository.
A path outside the repository, or one that is (or holds, or lies inside) a DVC-tracked output, is
refused: cleanup never deletes a product. Writes metrics/cleanup.json.
"""
from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import yaml

from emosum import dataio, params
from emosum.logs import setup_logging

log = logging.getLogger("emosum.cleanup")


def dvc_outs(root: Path) -> list[Path]:
    """Every out, metric and plot path that dvc.yaml declares."""
    doc = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) if (root / "dvc.yaml").exists() else {}
    outs = []
    for stage in (doc.get("stages") or {}).values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                outs.append(root / (next(iter(entry)) if isinstance(entry, dict) else entry))
    return [p.resolve() for p in outs]


def check_allowed(path: str, root: Path, protected: list[Path]) -> Path:
    target = (root / path).resolve()
    if root not in target.parents:
        raise ValueError(f"params.yaml: cleanup.paths: '{path}' is outside the repository; refusing")
    for out in protected + [root / ".dvc", root / ".git"]:
        out = out.resolve()
        if target == out or out in target.parents or target in out.parents:
            raise ValueError(f"params.yaml: cleanup.paths: '{path}' overlaps the DVC output or "
                             f"repository folder '{out.relative_to(root)}'; refusing")
    return target


def run(cfg: params.CleanupParams, root: Path, model_dir: Path) -> dict:
    root = root.resolve()
    protected = dvc_outs(root)
    targets = [check_allowed(p, root, protected) for p in cfg.paths]  # all checked before any delete
    freed = 0
    for t in targets:
        if t.exists():
            size = dataio.dir_size(t)
            shutil.rmtree(t) if t.is_dir() else t.unlink()
            freed += size
            log.info("removed %s (%.1f MB)", t.relative_to(root), size / 1e6)
    cache = root / ".dvc" / "cache"
    return {"bytes_freed": freed, "model_bytes": dataio.dir_size(model_dir) if model_dir.exists() else 0,
            "dvc_cache_bytes": dataio.dir_size(cache) if cache.exists() else 0}


def main() -> int:
    setup_logging()
    try:
        (cfg,) = params.load("cleanup")
        stats = run(cfg, Path.cwd(), Path("model"))
    except (params.ParamsError, ValueError) as e:
        log.error("%s", e)
        return 1
    log.info("freed %.1f MB; model %.1f MB on disk; DVC cache %.1f MB", stats["bytes_freed"] / 1e6,
             stats["model_bytes"] / 1e6, stats["dvc_cache_bytes"] / 1e6)
    dataio.write_metrics("metrics/cleanup.json", stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
