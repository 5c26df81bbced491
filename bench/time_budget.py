"""Benchmark: a time budget against the default schedule stopped by force after as many steps.

    python bench/time_budget.py                 # after `dvc repro` (it uses data/tokenizer, data/tokenized)
    python bench/time_budget.py --budget 2min

Two training runs of the default recipe on the same data, in this process, each scored by the
evaluate stage's own code on the test split:

  budget   train.time_budget: the steps and the learning-rate schedule (warm-up, linear decay to
           zero) fitted to the budget on this machine
  forced   the default schedule (train.epochs: 8 epochs of decay), stopped by a Trainer callback
           after as many optimizer steps as the budget run made: what a plain time limit
           (Lightning's max_time, Keras' TimeStopping) gives

Prints steps, training time, fact recall and ROUGE-L side by side, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import os

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", default="3min")
    args = ap.parse_args()
    os.chdir(ROOT)
    import logging

    from transformers import TrainerCallback

    from emosum import hf, params
    from emosum.logs import setup_logging
    from stages import evaluate, train

    setup_logging()
    logging.getLogger("emosum.evaluate").setLevel(logging.WARNING)
    hf.offline_env(False)
    model_p, cfg, ev = params.load("model", "train", "evaluate")
    out = {}
    with tempfile.TemporaryDirectory(dir=ROOT / ".scratch" if (ROOT / ".scratch").is_dir() else None) as tmp:
        tmp = Path(tmp)
        runs = {"budget": (cfg.model_copy(update={"time_budget": args.budget}), [])}
        for name in ("budget", "forced"):
            if name == "forced":
                steps = out["budget"]["steps"]

                class StopAt(TrainerCallback):
                    def on_step_end(self, a, state, control, **kw):
                        if state.global_step >= steps:
                            control.should_training_stop = True

                runs["forced"] = (cfg, [StopAt()])
            c, callbacks = runs[name]
            train.SCRATCH_DIR = tmp / name / "scratch"  # fresh checkpoints, never the pipeline's
            t0 = time.monotonic()
            stats = train.run(model_p, c, Path("data/tokenizer"), Path("data/tokenized"), tmp / name / "model", None,
                              callbacks=callbacks, started=t0)
            metrics, _, _ = evaluate.run(ev, tmp / name / "model", Path("data/tokenized"), Path("data/splits"))
            out[name] = {"steps": stats["steps"], "epochs": stats["epochs"], "train_s": stats["train_s"],
                         "wall_s": stats["wall_s"], "final_loss": stats["final_loss"], "eval_loss": stats["eval_loss"],
                         "rougeL": metrics["rougeL"], "fact_recall": metrics.get("fact_recall", {}),
                         "time_budget": stats.get("time_budget")}
    b, f = out["budget"], out["forced"]
    print(f"\n{'run':8} {'steps':>6} {'epochs':>7} {'train s':>8} {'stage s':>8} {'val loss':>9} {'ROUGE-L':>8} "
          + " ".join(f"{k:>9}" for k in b["fact_recall"]))
    for name, r in out.items():
        print(f"{name:8} {r['steps']:>6} {r['epochs']:>7.2f} {r['train_s']:>8.1f} {r['wall_s']:>8.1f} "
              f"{r['eval_loss']:>9.4f} {r['rougeL']:>8.2f} " + " ".join(f"{v:>9.1%}" for v in r["fact_recall"].values()))
    print(f"budget {args.budget}: the stage took {b['wall_s']:.1f} s ({100 * (b['wall_s'] / b['time_budget']['budget_s'] - 1):+.1f}%"
          f" of the budget; this process had its libraries loaded already)")
    print(json.dumps({"time_budget": args.budget, **out}, ensure_ascii=False))


if __name__ == "__main__":
    main()
