"""emosum-report compares a fast and a full run only where both were scored on the same test set."""
from emosum import report


def run(name, minutes, rouge, **params):
    base = {"data.path": "data/demo/emotions.jsonl.gz", "subsample.seed": 42, "subsample.max_samples": 5000,
            "train.epochs": 8}
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
