"""Benchmark: three queued experiments run one after the other, two and three at once.

    python bench/queue_share.py                  # about 12 min on 2 cores; run it alone
    python bench/queue_share.py --steps 40 --ways j1,j2

A clone of this repository's HEAD in a temporary folder, with small params (600 demo pairs, 128
tokens, fp32, greedy evaluation of 50 pairs): `dvc repro` once (subsample, tokenize, and a first
train/evaluate), then for each way three experiments that differ only in `train.seed` (new seeds
each way: no run-cache hit) are queued with `dvc exp run --queue` and run with
`dvc queue start -j N`. The time is from the start to the last experiment's end; each run's
s/step and threads come from its own metrics/train.json (`dvc exp show --json`).

  j1          -j 1: one after the other (the reference)
  j2, j3      -j 2, -j 3: the runs share the cores (emosum/machine.py)
  j2-whole    -j 2 with EMOSUM_SHARE_CORES=0: each run sizes its threads to the whole machine, as
              before the share existed

Prints the table, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WAYS = {"j1": (1, True), "j2": (2, True), "j3": (3, True), "j2-whole": (2, False)}


def sh(args: list[str], cwd: Path, env: dict | None = None) -> str:
    p = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout


def queue_idle(cwd: Path, env: dict) -> bool:
    out = sh(["dvc", "queue", "status"], cwd, env)
    return not any(w in out for w in ("Queued", "Running"))


def runs_of(cwd: Path, env: dict, names: list[str]) -> list[dict]:
    """train.json of the named experiments, from `dvc exp show --json`."""
    data = json.loads(sh(["dvc", "exp", "show", "--json"], cwd, env))
    found = {}
    for commit in data:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                if rev.get("name") in names:
                    metrics = (rev.get("data") or {}).get("metrics") or {}
                    found[rev["name"]] = (metrics.get("metrics/train.json") or {}).get("data") or {}
    return [found.get(n, {}) for n in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--ways", default="j1,j2,j3,j2-whole")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "EMOSUM_THREADS")}
    env.update(DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    small = [f"subsample.max_samples={args.samples}", "subsample.max_eval_samples=50",
             f"train.epochs={args.epochs}", "train.precision=fp32", "train.time_budget=null",
             "evaluate.num_beams=1", "tokenize.max_source_length=128"]
    rows, out = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "emosum"
        sh(["git", "clone", "-q", str(ROOT), str(repo)], ROOT)
        import yaml

        doc = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
        for s in small:
            key, value = s.split("=")
            sec, k = key.split(".")
            doc[sec][k] = yaml.safe_load(value)
        (repo / "params.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        sh(["git", "commit", "-qam", "bench: small params"], repo, env)
        print("dvc repro (subsample, tokenize, a first training) ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        sh(["dvc", "repro", "-q"], repo, env)
        print(f"  {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        for w, way in enumerate(args.ways.split(",")):
            jobs, shared = WAYS[way]
            names = [f"{way}-s{i}" for i in range(3)]
            wenv = dict(env, **({} if shared else {"EMOSUM_SHARE_CORES": "0"}))
            for i, n in enumerate(names):
                sh(["dvc", "exp", "run", "--queue", "-n", n, "-S", f"train.seed={100 * (w + 1) + i}"], repo, wenv)
            print(f"{way}: dvc queue start -j {jobs} ...", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            sh(["dvc", "queue", "start", "-j", str(jobs)], repo, wenv)
            time.sleep(5)
            while not queue_idle(repo, wenv):
                time.sleep(2)
            wall = time.monotonic() - t0
            train = runs_of(repo, wenv, names)
            failed = sh(["dvc", "queue", "status"], repo, wenv).count("Failed")
            row = {"way": way, "jobs": jobs, "shared": shared, "wall_s": round(wall, 1), "failed": failed,
                   "s_per_step": [t.get("s_per_step") for t in train],
                   "train_s": [t.get("train_s") for t in train],
                   "threads": [(t.get("cores") or {}).get("threads") for t in train],
                   "thread_changes": [(t.get("cores") or {}).get("thread_changes") for t in train],
                   "slow_run_causes": [(t.get("slow_run") or {}).get("causes_named") for t in train]}
            rows.append(row)
            print(f"  {wall:.0f} s; s/step {row['s_per_step']}; threads {row['threads']}", file=sys.stderr, flush=True)
            sh(["dvc", "queue", "remove", "--all"], repo, wenv)
    ref = next((r["wall_s"] for r in rows if r["way"] == "j1"), None)
    print(f"\nthree queued experiments ({args.samples} demo pairs, {args.epochs} epochs, fp32) on "
          f"{os.cpu_count()} CPUs\n")
    print("| way | -j | cores shared | all three done after | vs -j 1 | s/step of each | threads at start | "
          "thread changes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        vs = f"{r['wall_s'] / ref:.2f}x" if ref else "-"
        print(f"| {r['way']} | {r['jobs']} | {'yes' if r['shared'] else 'no (whole machine each)'} | "
              f"{r['wall_s']:.0f} s | {vs} | {', '.join(str(s) for s in r['s_per_step'])} | "
              f"{', '.join(str(t) for t in r['threads'])} | {', '.join(str(t) for t in r['thread_changes'])} |")
    out["rows"] = rows
    print(json.dumps(out))


if __name__ == "__main__":
    main()
