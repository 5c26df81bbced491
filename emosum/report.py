"""Compare runs: quality against cost, from the metrics files DVC tracked for each run.

    emosum-report                      # the workspace, HEAD and every experiment (dvc exp show -A)
    emosum-report fast-demo full-demo  # named experiments, branches, tags or commits
    emosum-report --fast fast-demo --full full-demo

Writes metrics/report.md (for each run: the params that differ, ROUGE, the lead-k and constant-
summary floors, fact recall beside both floors', training time, tokens/s, s/step, peak memory,
model size; then the fast run's ROUGE and fact recall as a percentage of the full run's, and the
speed-up) and metrics/report.png (ROUGE-L against training time, one
labelled point per run). Every number is read from `dvc exp show --json`, never retyped.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

COLUMNS = [  # (header, metrics file, key, format)
    ("ROUGE-1", "metrics/eval.json", "rouge1", "{:.2f}"),
    ("ROUGE-2", "metrics/eval.json", "rouge2", "{:.2f}"),
    ("ROUGE-L", "metrics/eval.json", "rougeL", "{:.2f}"),
    ("word ROUGE-L", "metrics/eval.json", "word_rougeL", "{:.2f}"),
    ("lead-k ROUGE-L", "metrics/eval.json", "lead_rougeL", "{:.2f}"),
    ("constant ROUGE-L", "metrics/eval.json", "constant_rougeL", "{:.2f}"),
    # tokenize.guide: the guide's clauses alone as the summary, the floor a guided run must beat
    ("guide ROUGE-L", "metrics/eval.json", "guide_rougeL", "{:.2f}"),
    # low: the model writes the same few summaries whatever the input (ROUGE can hide it)
    ("distinct outputs", "metrics/eval.json", "distinct_predictions_share", "{:.0%}"),
    # what the model saw: the share of the test references' character bigrams in its (selected or
    # truncated) inputs; a fast run that cuts inputs shows it here
    ("input coverage", "metrics/tokenize.json", "selection.splits.test.coverage.kept", "{:.3f}"),
    # what the training cut kept of the pool (subsample.strategy), beside a random cut of its size:
    # the pool pairs' mean similarity to their nearest kept pair (1.0 where nothing was cut)
    ("cut coverage", "metrics/subsample.json", "coverage.kept.mean_similarity_to_nearest_kept", "{:.3f}"),
    ("random cut coverage", "metrics/subsample.json", "coverage.random_cut.mean_similarity_to_nearest_kept",
     "{:.3f}"),
    ("train min", "metrics/train.json", "wall_s", "{:.1f}"),
    ("tokens/s", "metrics/train.json", "tokens_per_s", "{:.0f}"),
    ("s/step", "metrics/train.json", "s_per_step", "{:.3f}"),
    ("peak GB", "metrics/train.json", "peak_memory_gb", "{:.2f}"),
    ("model MB", "metrics/cleanup.json", "model_bytes", "{:.1f}"),
]


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def collect(cwd: Path = Path(".")) -> list[dict]:
    """Every run `dvc exp show` knows: {name, params (flat), metrics {file: dict}}."""
    out = subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], cwd=cwd, capture_output=True,
                         text=True, check=True).stdout
    runs = []

    def add(name, rev, listed=True):
        data = rev.get("data") or {}
        metrics = {f: (m or {}).get("data", {}) for f, m in (data.get("metrics") or {}).items()}
        if "metrics/eval.json" not in metrics:
            return
        params = _flat(((data.get("params") or {}).get("params.yaml") or {}).get("data", {}))
        runs.append({"name": name, "params": params, "metrics": metrics, "listed": listed,
                     "created": data.get("timestamp") or ""})

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True).stdout.strip()
    for base in json.loads(out):
        # a commit other than HEAD is listed only when named: every commit of a long history
        # repeats the same recipe
        rev = base["rev"]
        add(base.get("name") or (rev if rev == "workspace" else rev[:7]), base, listed=rev in ("workspace", head))
        for exp in base.get("experiments") or []:
            for rev in (exp.get("revs") or [])[:1]:  # the newest record of each experiment
                add(exp.get("name") or rev.get("name") or rev["rev"][:7], rev)
    # a workspace with nothing uncommitted is HEAD's run again: one row, under HEAD's name
    if len(runs) > 1 and runs[0]["name"] == "workspace" and \
            (runs[0]["params"], runs[0]["metrics"]) == (runs[1]["params"], runs[1]["metrics"]):
        runs.pop(0)
    return runs


def by_name(runs: list[dict]) -> tuple[dict, list[str]]:
    """Runs by name, and the names more than one run has (an experiment name reused on another
    commit: `dvc exp run -n` only refuses a name taken on the same one). The newest run keeps a
    reused name (ISO timestamps sort as text; a run without one counts as oldest)."""
    by: dict[str, dict] = {}
    reused = []
    for r in runs:
        old = by.get(r["name"])
        if old is not None:
            reused.append(r["name"])
            if r.get("created", "") <= old.get("created", ""):
                continue
        by[r["name"]] = r
    return by, sorted(set(reused))


def value(run: dict, file: str, key: str):
    v = run["metrics"].get(file, {})
    for part in key.split("."):  # fact_recall.emotion: nested keys
        v = v.get(part) if isinstance(v, dict) else None
    if v is not None and key == "wall_s":
        return v / 60
    if v is not None and key == "model_bytes":
        return v / 1e6
    return v


def differing(runs: list[dict]) -> list[str]:
    # keys every run has: a run made before a key existed in params.yaml used its default
    keys = sorted(set.intersection(*(set(r["params"]) for r in runs)))
    return [k for k in keys if len({json.dumps(r["params"].get(k)) for r in runs}) > 1]


def test_set_difference(a: dict, b: dict) -> list[str]:
    """The params that make two runs' test sets differ: every `data.*` and `subsample.*` key but
    `subsample.max_samples`, which caps the training split only. Keys one run lacks (made before
    the key existed) are not counted."""
    keys = sorted(k for k in set(a["params"]) & set(b["params"])
                  if k.split(".")[0] in ("data", "subsample") and k != "subsample.max_samples")
    return [k for k in keys if json.dumps(a["params"][k]) != json.dumps(b["params"][k])]


def pick(runs: list[dict], fast_name: str | None = None, full_name: str | None = None) -> tuple[dict, dict]:
    """The fast and the full run: as named, else the slowest to train and the quickest scored on
    the same test set (ROUGE on different data says nothing about the recipe)."""
    by = {r["name"]: r for r in runs}
    timed = sorted(runs, key=lambda r: value(r, "metrics/train.json", "wall_s"))
    full = by.get(full_name) or timed[-1]
    fast = by.get(fast_name) or next(r for r in timed if not test_set_difference(r, full))
    return fast, full


def share(a, b) -> str:
    """a as a percentage of b; 'n/a' where b is zero (a model that scored nothing)."""
    return f"{100 * a / b:.1f}%" if a is not None and b else "n/a"


def fact_columns(runs: list[dict], split: str = "") -> list[tuple]:
    """Fact recall columns: every fact any run measured, the model's then both floors'. `split`: an
    extra test split's (its metrics sit under its name in eval.json)."""
    at = f"{split}." if split else ""
    cols = sorted({c for r in runs for c in (value(r, "metrics/eval.json", f"{at}fact_recall") or {})},
                  key=lambda c: (c == "all", c))
    out = [(f"{split + ' ' if split else ''}{who}{c} recall", "metrics/eval.json", f"{at}{prefix}fact_recall.{c}",
            "{:.0%}") for c in cols for who, prefix in (("", ""), ("lead ", "lead_"), ("constant ", "constant_"))]
    if any(value(r, "metrics/eval.json", f"{at}label_hint_accuracy") is not None for r in runs):
        # tokenize.guide_label: the classifier's label alone, the floor the model's label recall stands on
        out.append((f"{split + ' ' if split else ''}label hint alone", "metrics/eval.json", f"{at}label_hint_accuracy",
                    "{:.0%}"))
    return out


def extra_splits(runs: list[dict]) -> list[str]:
    """The extra test splits (data.extra_test_splits) any run scored: dicts in eval.json holding rougeL."""
    return sorted({k for r in runs for k, v in r["metrics"].get("metrics/eval.json", {}).items()
                   if isinstance(v, dict) and "rougeL" in v})


def split_columns(runs: list[dict]) -> list[tuple]:
    out = []
    for split in extra_splits(runs):
        out += [(f"{split} ROUGE-L", "metrics/eval.json", f"{split}.rougeL", "{:.2f}"),
                (f"{split} lead-k ROUGE-L", "metrics/eval.json", f"{split}.lead_rougeL", "{:.2f}"),
                (f"{split} constant ROUGE-L", "metrics/eval.json", f"{split}.constant_rougeL", "{:.2f}")]
        out += fact_columns(runs, split)
    return out


def replicas(runs: list[dict], run: dict) -> list[dict]:
    """The run and the runs of the same recipe with another training seed (every param equal but
    train.seed), one per seed: an older commit that repeats the recipe with the same seed is the
    same run again, not another seed. Older commits count only when listed (named, or HEAD): with
    `--all-commits` every commit of a long history repeats the default recipe, some on other code
    or other demo data, and seventeen of them once passed for seventeen seeds."""
    def same(r):  # keys one run lacks (made before the key existed) are not counted, as in differing()
        keys = (set(r["params"]) & set(run["params"])) - {"train.seed"}
        return all(json.dumps(r["params"][k]) == json.dumps(run["params"][k]) for k in keys)
    out, seeds = [run], {json.dumps(run["params"].get("train.seed"))}
    for r in runs:
        seed = json.dumps(r["params"].get("train.seed"))
        if r is not run and r.get("listed", True) and seed not in seeds and same(r):
            out.append(r)
            seeds.add(seed)
    return out


def quality_figures(runs: list[dict]) -> list[tuple[str, str, str, int]]:
    """(split, label, key in metrics/eval.json, scale) of ROUGE-L and each fact recall the runs
    have, on the test split ('') and each extra test split."""
    recalls = sorted({c for r in runs for c in (value(r, "metrics/eval.json", "fact_recall") or {})})
    metrics = [("ROUGE-L", "rougeL", 1)] + [(f"{c} recall", f"fact_recall.{c}", 100) for c in recalls]
    return [(split, label, f"{split}.{key}" if split else key, scale)
            for split in ["", *extra_splits(runs)] for label, key, scale in metrics]


def over_seeds(group: list[dict], file: str, key: str, scale: float = 1) -> tuple[float, float, int] | None:
    """The mean, the range and the count of a figure over a recipe's runs (None: no run has it)."""
    xs = [v * scale for r in group if (v := value(r, file, key)) is not None]
    return (sum(xs) / len(xs), max(xs) - min(xs), len(xs)) if xs else None


def beyond_spread(a: tuple, b: tuple) -> bool | None:
    """Whether two recipes' means (over_seeds) differ by more than either's range; None with one seed."""
    if min(a[2], b[2]) < 2:
        return None
    return abs(a[0] - b[0]) > max(a[1], b[1])


def spread_line(runs: list[dict], fast: dict, full: dict) -> list[str]:
    """Fast against full on each test split, as the mean over each recipe's seeds, with the
    run-to-run spread (the range over seeds) beside every difference: a difference inside the
    spread is not one."""
    a, b = replicas(runs, fast), replicas(runs, full)
    rows = []
    for split, label, k, scale in quality_figures(a + b):
        sa, sb = over_seeds(a, "metrics/eval.json", k, scale), over_seeds(b, "metrics/eval.json", k, scale)
        if sa is None or sb is None:
            continue
        beyond = beyond_spread(sa, sb)
        verdict = ("one seed: spread unknown" if beyond is None else "within the spread" if not beyond else
                   "fast ahead" if sa[0] > sb[0] else "full ahead")
        rows.append(f"| {split or 'test'} | {label} | {sa[0]:.1f} (n={sa[2]}, range {sa[1]:.1f}) | "
                    f"{sb[0]:.1f} (n={sb[2]}, range {sb[1]:.1f}) | {sa[0] - sb[0]:+.1f} | {verdict} |")
    if not rows:
        return []
    # the cost beside the quality: each recipe's training time over its seeds, and the ratio of the means
    ta, tb = over_seeds(a, "metrics/train.json", "wall_s"), over_seeds(b, "metrics/train.json", "wall_s")
    if ta and tb:
        rows.append(f"| cost | training minutes | {ta[0]:.1f} (n={ta[2]}, range {ta[1]:.1f}) | "
                    f"{tb[0]:.1f} (n={tb[2]}, range {tb[1]:.1f}) | {ta[0] - tb[0]:+.1f} | "
                    f"full takes {tb[0] / ta[0]:.1f}x as long |")
    return [f"Fast (**{fast['name']}**, {len(a)} seed(s)) against full (**{full['name']}**, {len(b)} seed(s)): the "
            "mean over each recipe's training seeds (`train.seed`), the range over seeds beside it, and the "
            "difference; fact recall in %.", "",
            "| split | metric | fast | full | fast - full | |", "|---|---|---|---|---|---|", *rows, ""]


def recipe_lines(runs: list[dict], fast: dict) -> list[str]:
    """Every recipe among the runs (its seeds pooled: every param equal but train.seed), scored on the
    fast run's test set, one row each: the mean and range over its seeds of ROUGE-L and each fact
    recall on every split, and its training minutes; each figure's difference from the fast recipe,
    in bold where it is larger than both recipes' ranges. So a recipe that takes back one of the
    fast mode's cuts shows what that cut costs. Nothing when there are fewer than three recipes
    (the fast-vs-full table says it all)."""
    groups, placed = [], set()
    for r in runs:
        if id(r) in placed or not r.get("listed", True) or test_set_difference(fast, r):
            continue
        g = [x for x in replicas(runs, r) if id(x) not in placed]
        placed.update(id(x) for x in g)
        groups.append(g)
    if len(groups) < 3:
        return []
    base = next((g for g in groups if fast in g), groups[0])
    figures = [(f"{split} {label}".strip(), "metrics/eval.json", k, scale)
               for split, label, k, scale in quality_figures(runs)]
    figures.append(("train min", "metrics/train.json", "wall_s", 1))  # value() gives minutes
    keys = [k for k in differing(runs) if k != "train.seed"]
    head = ["recipe", "seeds", "params that differ"] + [name for name, *_ in figures]
    lines = ["Every recipe, its seeds pooled: mean (range over `train.seed`) and, after the comma, the "
             f"difference from the fast recipe (**{fast['name']}**), in bold where it is larger than both "
             "ranges; fact recall in %.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        ps = ", ".join(f"{k}={g[0]['params'].get(k)}" for k in keys) or "-"
        cells = []
        for _, f, k, scale in figures:
            a, b = over_seeds(g, f, k, scale), over_seeds(base, f, k, scale)
            if a is None:
                cells.append("-")
            elif g is base or b is None:
                cells.append(f"{a[0]:.1f} ({a[1]:.1f})")
            else:
                cell = f"{a[0]:.1f} ({a[1]:.1f}), {a[0] - b[0]:+.1f}"
                cells.append(f"**{cell}**" if beyond_spread(a, b) else cell)
        lines.append(f"| {' + '.join(r['name'] for r in g)} | {len(g)} | {ps} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(runs: list[dict], fast: dict, full: dict) -> str:
    keys = differing(runs)
    columns = COLUMNS[:6] + fact_columns(runs) + split_columns(runs) + COLUMNS[6:]
    lines = ["# emosum: fast vs full", "",
             "Character-level ROUGE F1 x100 on each run's test split beside two floors: the lead-k (the",
             "input's first k characters) and the best constant summary (one training summary written for",
             "every input); fact recall (the share of summaries stating the row's value, naming no other)",
             "for the model and both floors; the same on each extra test split (the demo's `heldout`: causes",
             "and feeling wordings absent from training); training cost. Runs on other data are listed, and",
             "compared only with runs scored on the same test set. Read from each run's metrics files by",
             "`emosum-report`.",
             ""]
    head = ["run", "params that differ"] + [c[0] for c in columns]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        ps = ", ".join(f"{k}={r['params'].get(k)}" for k in keys) or "-"
        cells = [fmt.format(v) if (v := value(r, f, k)) is not None else "-" for _, f, k, fmt in columns]
        lines.append(f"| {r['name']} | {ps} | " + " | ".join(cells) + " |")
    lines.append("")
    differ = test_set_difference(fast, full)
    if differ:
        lines += [f"**{fast['name']}** and **{full['name']}** were scored on different test sets ("
                  + ", ".join(f"{k}: {fast['params'][k]} vs {full['params'][k]}" for k in differ)
                  + "): their scores are not compared.", ""]
    elif fast is not full:
        q = share(value(fast, "metrics/eval.json", "rougeL"), value(full, "metrics/eval.json", "rougeL"))
        w = share(value(fast, "metrics/eval.json", "word_rougeL"), value(full, "metrics/eval.json", "word_rougeL"))
        t = value(full, "metrics/train.json", "wall_s") / value(fast, "metrics/train.json", "wall_s")
        lines += [f"**{fast['name']}** keeps **{q}** of **{full['name']}**'s ROUGE-L "
                  f"({w} at the word level) and trains **{t:.1f}x** faster "
                  f"({value(fast, 'metrics/train.json', 'wall_s'):.1f} vs "
                  f"{value(full, 'metrics/train.json', 'wall_s'):.1f} min).", ""]
        shares = []
        for _, f, k, _ in fact_columns([fast, full])[::3]:
            a, b = value(fast, f, k), value(full, f, k)
            if a is not None and b is not None:
                shares.append(f"{k.split('.')[-1]} {share(a, b)} ({100 * a:.0f}% vs {100 * b:.0f}%)")
        if shares:
            lines += [f"Of **{full['name']}**'s fact recall, **{fast['name']}** keeps: " + "; ".join(shares) + ".", ""]
        lines += spread_line(runs, fast, full)
        lines += recipe_lines(runs, fast)
    lines += ["![ROUGE-L against training time](report.png)", ""]
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    xs = [value(r, "metrics/train.json", "wall_s") for r in runs]
    ys = [value(r, "metrics/eval.json", "rougeL") for r in runs]
    ax.scatter(xs, ys, color="tab:blue")
    for r, x, y in zip(runs, xs, ys):
        ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    floor = value(runs[0], "metrics/eval.json", "lead_rougeL")
    if floor is not None:
        ax.axhline(floor, color="grey", linestyle="--", linewidth=1, label="lead-k floor")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("training time (min)")
    ax.set_ylabel("ROUGE-L (character level, x100)")
    ax.set_title("Quality against cost, one point per run")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    from emosum import dataio

    ap = argparse.ArgumentParser(prog="emosum-report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", help="experiment names or revisions (default: all)")
    ap.add_argument("--fast", help="the fast run (default: the quickest to train on the full run's test set)")
    ap.add_argument("--full", help="the full run (default: the slowest to train)")
    ap.add_argument("--out", default="metrics/report.md")
    args = ap.parse_args(argv)
    runs = collect_cache = collect()
    by, reused = by_name(runs)
    named = list(args.runs) + [n for n in (args.fast, args.full) if n and n not in args.runs]
    for name in (n for n in reused if n in named):  # an unnamed run is looked up by no name
        print(f"emosum-report: more than one run is named {name} (experiments on different commits); using the "
              f"newest, made {by[name].get('created') or 'at an unknown time'}; `dvc exp rename` or `dvc exp remove` "
              "the other to choose", file=sys.stderr)
    missing = [n for n in named if n not in by]
    if missing:
        print(f"emosum-report: no run named {', '.join(missing)}; known: {', '.join(by)}", file=sys.stderr)
        return 1
    runs = [by[n] for n in args.runs] if args.runs else \
        [r for r in runs if r["listed"]] + [by[n] for n in named if not by[n]["listed"]]
    runs = [r for r in runs if value(r, "metrics/train.json", "wall_s")]
    if not runs:
        print("emosum-report: no run with metrics yet; run `dvc repro` or `dvc exp run` first", file=sys.stderr)
        return 1
    fast, full = pick(runs, args.fast, args.full)
    # the other seeds of the fast and the full recipe are compared too, though not named
    everyone = [r for r in collect_cache if value(r, "metrics/train.json", "wall_s")]
    runs += [r for r in everyone if r not in runs and (r in replicas(everyone, fast) or r in replicas(everyone, full))]
    out = Path(args.out)
    with dataio.atomic_path(out.with_suffix(".png")) as tmp:
        plot(runs, tmp.with_suffix(".png"))
        tmp.with_suffix(".png").replace(tmp)
    with dataio.atomic_path(out) as tmp:
        tmp.write_text(markdown(runs, fast, full), encoding="utf-8")
    print(out.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
