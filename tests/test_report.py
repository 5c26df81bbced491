"""emosum-report compares a fast and a full run only where both were scored on the same test set."""
from emosum import report


def run(name, minutes, rouge, **params):
    base = {"data.path": "data/demo/emotions.jsonl.gz", "subsample.seed": 42, "subsample.max_samples": 5000,
            "train.epochs": 8, "train.max_steps": -1}
    return {"name": name, "params": {**base, **params}, "listed": True,
            "metrics": {"metrics/eval.json": {"rougeL": rouge, "word_rougeL": rouge, "lead_rougeL": 10.0},
                        "metrics/train.json": {"wall_s": 60 * minutes}}}


def test_the_default_pair_is_scored_on_one_test_set():
    main = run("main", 5, 90.0)
    full = run("full-demo", 24, 98.0, **{"subsample.max_samples": None})  # more training data, same test set
    csl = run("csl", 1.5, 10.4, **{"data.path": "../shared/data/csl/pairs.jsonl"})  # quicker, other data
    fast, slow = report.pick([main, full, csl])
    assert (fast["name"], slow["name"]) == ("main", "full-demo")
    text = report.markdown([main, full, csl], fast, slow)
    assert "**main** keeps **91.8%** of **full-demo**'s ROUGE-L" in text


def test_runs_on_other_data_are_listed_but_not_compared():
    main, csl = run("main", 5, 90.0), run("csl", 1.5, 10.4, **{"data.path": "../shared/data/csl/pairs.jsonl"})
    fast, full = report.pick([main, csl], fast_name="csl", full_name="main")
    text = report.markdown([main, csl], fast, full)
    assert "| csl |" in text and "keeps" not in text
    assert "**csl** and **main** were scored on different test sets (data.path: ../shared/data/csl/pairs.jsonl " \
           "vs data/demo/emotions.jsonl.gz)" in text


def test_a_key_one_run_lacks_does_not_make_the_test_sets_differ():
    old = run("old", 5, 90.0)
    new = run("new", 6, 91.0, **{"data.sheet": None})  # a key added to params.yaml later
    assert report.test_set_difference(old, new) == []


def _with_heldout(r, rouge, cause, seed):
    r["params"]["train.seed"] = seed
    r["metrics"]["metrics/eval.json"].update(
        fact_recall={"cause": cause, "emotion": 0.9},
        heldout={"rougeL": rouge - 10, "lead_rougeL": 9.0, "constant_rougeL": 20.0,
                 "fact_recall": {"cause": cause - 0.2, "emotion": 0.8}})
    return r


def test_fast_and_full_with_the_seed_spread_on_each_split():
    runs = [_with_heldout(run("main", 5, 90.0), 90.0, 0.95, 42),
            _with_heldout(run("main-s2", 5, 89.0), 89.0, 0.93, 7),
            _with_heldout(run("full-demo", 20, 97.0, **{"subsample.max_samples": None}), 97.0, 0.96, 42),
            _with_heldout(run("full-s2", 20, 96.0, **{"subsample.max_samples": None}), 96.0, 0.94, 7)]
    fast, full = report.pick(runs, "main", "full-demo")
    text = report.markdown(runs, fast, full)
    assert "| heldout ROUGE-L | heldout lead-k ROUGE-L |" in text and "heldout cause recall" in text
    assert "label hint alone" not in text   # no run had one
    runs[0]["metrics"]["metrics/eval.json"].update(label_hint_accuracy=0.957)
    runs[0]["metrics"]["metrics/eval.json"]["heldout"]["label_hint_accuracy"] = 0.7
    hinted = report.markdown(runs, fast, full)
    header = next(line for line in hinted.splitlines() if "label hint alone" in line)
    row = next(line for line in hinted.splitlines() if line.startswith("| main |"))
    cells, values = header.split(" | "), row.split(" | ")
    assert values[cells.index("label hint alone")] == "96%"
    assert values[cells.index("heldout label hint alone")] == "70%"
    # ROUGE-L: fast 89.5 (range 1.0) vs full 96.5 (range 1.0): -7.0, beyond the spread
    assert "| test | ROUGE-L | 89.5 (n=2, range 1.0) | 96.5 (n=2, range 1.0) | -7.0 | full ahead |" in text
    assert "| heldout | ROUGE-L | 79.5 (n=2, range 1.0) | 86.5 (n=2, range 1.0) | -7.0 | full ahead |" in text
    # cause recall: 94 vs 95 with a range of 2 points: no difference
    assert "| test | cause recall | 94.0 (n=2, range 2.0) | 95.0 (n=2, range 2.0) | -1.0 | within the spread |" in text
    assert "| heldout | cause recall | 74.0 (n=2, range 2.0) | 75.0 (n=2, range 2.0) | -1.0 | within the spread |" in text
    # the cost over the same seeds: 5 and 5 minutes against 20 and 20
    assert "| cost | training minutes | 5.0 (n=2, range 0.0) | 20.0 (n=2, range 0.0) | -15.0 | full takes 4.0x as long |" \
        in text


def test_older_commits_and_reruns_of_one_seed_are_not_counted_as_seeds():
    main = _with_heldout(run("main", 5, 90.0), 90.0, 0.95, 42)
    seed7 = _with_heldout(run("main-s2", 5, 88.0), 88.0, 0.93, 7)
    rerun = _with_heldout(run("main-again", 5, 91.0), 91.0, 0.97, 42)  # the same seed again: not a second seed
    old = _with_heldout(run("1a2b3c4", 5, 99.0), 99.0, 1.0, 3)  # an older commit (other data), not named
    old["listed"] = False
    full = _with_heldout(run("full-demo", 20, 97.0, **{"subsample.max_samples": None}), 97.0, 0.96, 42)
    runs = [main, seed7, rerun, old, full]
    assert [r["name"] for r in report.replicas(runs, main)] == ["main", "main-s2"]
    text = report.markdown(runs, main, full)
    assert "| test | ROUGE-L | 89.0 (n=2, range 2.0) | 97.0 (n=1, range 0.0) | -8.0 | one seed: spread unknown |" in text


def test_a_reused_experiment_name_means_the_newest_run():
    """`dvc exp run -n main6-seed7` on two commits leaves two runs of one name: the newest is the one
    a user means (the dict of names used to keep whichever `dvc exp show` listed last: the oldest)."""
    new, old = run("wd-seed7", 7, 95.0), run("wd-seed7", 7, 94.0)
    new["created"], old["created"] = "2026-12-07T06:31:44", "2026-12-06T21:10:00"
    other = run("main", 7, 95.4)
    for order in ([new, other, old], [old, other, new]):
        by, reused = report.by_name(order)
        assert by["wd-seed7"] is new and by["main"] is other and reused == ["wd-seed7"]
    assert report.by_name([other]) == ({"main": other}, [])


def test_every_recipe_pooled_over_its_seeds_against_the_fast_one():
    """With a third recipe (one of the fast mode's cuts taken back), each recipe gets one row: the mean
    and range over its seeds, and the difference from the fast recipe, bold only beyond both ranges."""
    fast = [_with_heldout(run("main", 5, 90.0), 90.0, 0.95, 42), _with_heldout(run("main-s7", 5, 89.0), 89.0, 0.93, 7)]
    longer = [_with_heldout(run("steps", 12, 95.0, **{"train.max_steps": 2000}), 95.0, 0.94, 42),
              _with_heldout(run("steps-s7", 12, 94.0, **{"train.max_steps": 2000}), 94.0, 0.96, 7)]
    full = [_with_heldout(run("full", 20, 97.0, **{"subsample.max_samples": None}), 97.0, 0.96, 42),
            _with_heldout(run("full-s7", 20, 96.0, **{"subsample.max_samples": None}), 96.0, 0.94, 7)]
    runs = fast + longer + full
    text = report.markdown(runs, fast[0], full[0])
    head = next(line for line in text.splitlines() if line.startswith("| recipe | seeds |"))
    assert head.split(" | ")[3:6] == ["ROUGE-L", "cause recall", "emotion recall"]
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| main + ")
            or line.startswith("| steps + ") or line.startswith("| full + ")}
    assert rows.keys() == {"| main + main-s7", "| steps + steps-s7", "| full + full-s7"}
    assert "| 2 | subsample.max_samples=5000, train.max_steps=-1 | 89.5 (1.0) | 94.0 (2.0) |" in rows["| main + main-s7"]
    # ROUGE-L +5.0 beyond both ranges (1.0): bold; cause +1.0 inside the ranges (2.0): plain
    assert "| **94.5 (1.0), +5.0** | 95.0 (2.0), +1.0 |" in rows["| steps + steps-s7"]
    assert "| **12.0 (0.0), +7.0** |" in rows["| steps + steps-s7"]  # training minutes, the cost beside
    assert "heldout ROUGE-L" in head and "**84.5 (1.0), +5.0**" in rows["| steps + steps-s7"]
    # two recipes: the fast-vs-full table already says it all
    assert "| recipe | seeds |" not in report.markdown(fast + full, fast[0], full[0])
    # a run of one seed has no range to compare: never bold
    text = report.markdown(fast + longer[:1] + full, fast[0], full[0])
    assert "| steps | 1 |" in text and "**" not in next(line for line in text.splitlines() if line.startswith("| steps |"))
