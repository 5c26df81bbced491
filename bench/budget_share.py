"""Benchmark: `train.time_budget` alone and with a second training starting half-way through.

    python bench/budget_share.py                 # about 9 min on 2 cores; run it alone
    python bench/budget_share.py --budget 2min

A clone of this repository's HEAD in a temporary folder (the default recipe, only the budget set),
`dvc repro tokenize` once, and two copies of that clone for the runs below (each trains afresh).
Then:

  alone        `dvc repro train` with the budget, nothing else training
  second run   the same, and half-way through its budget a second `dvc repro train` (same
               budget) starts in the copy: the two share the cores (emosum/machine.py), so the
               first one's steps slow down half-way and speed up again when it ends first

Each stage's time is `time_budget.total_s` of its own metrics/train.json (the stage's start to the
saved model, what the budget counts). Prints the table, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sh(args: list[str], cwd: Path, env: dict) -> None:
    p = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")


def result(repo: Path) -> dict:
    t = json.loads((repo / "metrics" / "train.json").read_text(encoding="utf-8"))
    tb = t["time_budget"]
    assert not t["resumed_from_step"], f"{repo}: resumed from step {t['resumed_from_step']}, not a fresh run"
    return {"total_s": tb["total_s"], "steps": t["steps"], "planned_steps": tb["planned_steps"],
            "estimates": tb["estimates"], "replans": len(tb["replans"]), "stopped_by": tb["stopped_by"],
            "threads": (t.get("cores") or {}).get("threads"),
            "thread_changes": (t.get("cores") or {}).get("thread_changes"),
            "s_per_step": t["s_per_step"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", default="3min")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from emosum import budget

    budget_s = budget.seconds(args.budget)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "EMOSUM_THREADS")}
    env.update(DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # three copies after tokenize: a forced rerun in the same folder would resume from the first
        # run's last checkpoint (cleanup has not run), not train again
        alone, a, b = Path(tmp) / "alone", Path(tmp) / "first", Path(tmp) / "second"
        sh(["git", "clone", "-q", str(ROOT), str(alone)], ROOT, env)
        import yaml

        doc = yaml.safe_load((alone / "params.yaml").read_text(encoding="utf-8"))
        doc["train"]["time_budget"] = args.budget
        (alone / "params.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False),
                                           encoding="utf-8")
        print("dvc repro tokenize ...", file=sys.stderr, flush=True)
        sh(["dvc", "repro", "-q", "tokenize"], alone, env)
        for copy in (a, b):
            shutil.copytree(alone, copy, symlinks=True)

        print(f"alone: dvc repro train, budget {args.budget} ...", file=sys.stderr, flush=True)
        sh(["dvc", "repro", "-q", "-s", "train"], alone, env)
        rows.append({"way": "alone", **result(alone)})
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)

        print(f"second run from half-way: dvc repro train, and another at {budget_s / 2:.0f} s ...",
              file=sys.stderr, flush=True)
        first = subprocess.Popen(["dvc", "repro", "-q", "-s", "train"], cwd=a, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(budget_s / 2)
        second = subprocess.Popen(["dvc", "repro", "-q", "-s", "train"], cwd=b, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for p, where in ((first, a), (second, b)):
            _, err = p.communicate()
            if p.returncode:
                raise SystemExit(f"dvc repro train failed in {where}:\n{err[-2000:]}")
        rows.append({"way": "with a second run from half-way", **result(a)})
        rows.append({"way": "the second run (started half-way)", **result(b)})
    print(f"\ntrain.time_budget {args.budget} ({budget_s:.0f} s), default recipe, {os.cpu_count()} CPUs\n")
    print("| run | stage | vs budget | steps (first plan) | re-estimates | replans | stopped by | threads at start | "
          "thread changes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['way']} | {r['total_s']:.1f} s | {100 * (r['total_s'] / budget_s - 1):+.1f}% | {r['steps']} "
              f"({r['planned_steps']}) | {r['estimates']} | {r['replans']} | {r['stopped_by']} | {r['threads']} | "
              f"{r['thread_changes']} |")
    print(json.dumps({"budget_s": budget_s, "rows": rows}))


if __name__ == "__main__":
    main()
