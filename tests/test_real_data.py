"""The real Chinese sets in ../shared/data through subsample and tokenize (skipped where absent).

Their columns are `source` / `summary` with the file's own `split` (dev / test), not the demo's
`text` / `summary`: these check that the params alone make the pipeline read them as they are.
The README's command for a small labelled set is checked on a stand-in made here (always runs).
"""
import json

import pytest

from conftest import SHARED_DATA, tiny_section as section
from emosum import params
from stages import subsample, tokenize

CSL = SHARED_DATA / "csl" / "pairs.jsonl"
VCSUM = SHARED_DATA / "vcsum" / "segments.jsonl"


def real_data(path):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} absent (real data lives in ../shared/data)")


def data_params(path, **over):
    return params.parse_section("data", {"path": str(path), "text_column": "source", "summary_column": "summary",
                                         "split_column": "split", "train_split": "dev", "validation_split": None,
                                         "test_split": "test", **over})


def file_rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


@real_data(CSL)
def test_csl_keeps_its_official_test_split(tmp_path):
    rows = file_rows(CSL)
    stats = subsample.run(data_params(CSL), section("subsample", max_samples=None, max_eval_samples=None),
                          tmp_path / "splits")
    assert stats["rows_read"] == len(rows) == 2000 and sum(stats["dropped"].values()) == 0
    test_sources = {r["source"] for r in rows if r["split"] == "test"}
    out = {s: file_rows(tmp_path / "splits" / f"{s}.jsonl") for s in ("train", "validation", "test")}
    assert {r["text"] for r in out["test"]} == test_sources  # the official test split, whole
    # validation carved out of dev (validation_split: null), never overlapping train or test
    train_texts, val_texts = {r["text"] for r in out["train"]}, {r["text"] for r in out["validation"]}
    assert val_texts and not val_texts & train_texts and not (val_texts | train_texts) & test_sources
    assert len(out["train"]) + len(out["validation"]) == sum(r["split"] == "dev" for r in rows)


@real_data(VCSUM)
def test_vcsum_long_meetings_are_truncated_and_reported(tmp_path):
    subsample.run(data_params(VCSUM), section("subsample", max_samples=None, max_eval_samples=None),
                  tmp_path / "splits")
    tok_p = section("tokenize", vocab_size=4000, max_source_length=512, max_target_length=256)
    stats = tokenize.run(section("model"), tok_p, tmp_path / "splits", tmp_path / "tok", tmp_path / "tokenized")
    train = stats["splits"]["train"]
    # meeting segments average 2,643 characters: most exceed 512 tokens, and the metrics say so
    assert train["source_truncated_share"] > 0.5
    assert train["source_tokens"]["p100"] > 512
    from datasets import load_from_disk

    ds = load_from_disk(str(tmp_path / "tokenized"))
    assert max(ds["train"]["length"]) == 512


def readme_real_data_commands() -> list[list[str]]:
    """Every `dvc exp run` in the README and docs/*.md that points data.path at ../shared/data: its -S overrides."""
    import re
    import shlex

    from conftest import ROOT

    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(f.read_text(encoding="utf-8") for f in files).replace("\\\n", " ")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.strip().startswith("dvc exp run") and "data.path=../shared/data/" in line:
                words = shlex.split(line.split(" #")[0])
                out.append([words[i + 1] for i, w in enumerate(words) if w == "-S"])
    return out


@real_data(CSL)
def test_readme_real_data_commands_run_on_params_yaml(tmp_path):
    """The README's CSL commands applied to today's params.yaml (as `dvc exp run -S` does) validate
    and subsample: a new default (extra_test_splits: [heldout]) once broke them unnoticed."""
    import yaml

    from conftest import ROOT

    commands = readme_real_data_commands()
    assert len(commands) >= 2, "the README's CSL commands (from scratch, from the demo's model) are gone"
    for sets in commands:
        doc = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
        for s in sets:
            doc = params.override(doc, s.replace("../shared/data", str(SHARED_DATA)))
        data, sub, ev = params.validate(doc, "data", "subsample", "evaluate")
        stats = subsample.run(data, sub.model_copy(update={"max_eval_samples": 20}), tmp_path / "splits",
                              ev.fact_columns)
        assert stats["rows_read"] == 2000 and sum(stats["dropped"].values()) == 0, (sets, stats["dropped"])
        assert len(file_rows(tmp_path / "splits" / "test.jsonl")) == 20  # CSL's own test split, capped


def test_readme_small_labelled_set_command_runs_on_params_yaml(tmp_path):
    """The README's one command for a small labelled set (issue 22 item 7: a reviewer runs it as
    written on a corpus we do not have) applied to today's params.yaml validates in every section
    and subsamples a stand-in of that shape (bench/labelled_proxy.py) into its own train / test
    splits with both fact columns. No shared data needed: it always runs."""
    import importlib.util
    import re
    import shlex

    import yaml

    from conftest import ROOT
    from emosum import dataio

    text = (ROOT / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S) for line in block.splitlines()
             if "dvc exp run -n mine" in line]
    assert len(lines) == 1, "the README's one command for a small labelled set is gone (or doubled)"
    words = shlex.split(lines[0])
    assert words[:3] == ["rm", "-rf", "../emosum-demo-model"] and "cp" in words  # the demo's model copied out first
    sets = [words[i + 1] for i, w in enumerate(words) if w == "-S"]
    spec = importlib.util.spec_from_file_location("labelled_proxy", ROOT / "bench" / "labelled_proxy.py")
    proxy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(proxy)
    mine = tmp_path / "mine.jsonl"
    dataio.write_jsonl(mine, proxy.make(seed=3, train=60, test=12))
    doc = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for s in sets:
        doc = params.override(doc, s.replace("$PWD/../mine.jsonl", str(mine)))
    data, sub, model, tok, train, ev = params.validate(doc, "data", "subsample", "model", "tokenize", "train",
                                                       "evaluate")
    assert model.name == "$PWD/../emosum-demo-model" and not tok.prune_vocab and train.epochs == 3
    assert ev.fact_columns == ["cause", "emotion"] and data.extra_test_splits == []
    stats = subsample.run(data, sub, tmp_path / "splits", ev.fact_columns)
    assert stats["rows_read"] == 72 and sum(stats["dropped"].values()) == 0, stats["dropped"]
    test = file_rows(tmp_path / "splits" / "test.jsonl")
    assert len(test) == 12 and all(r["facts"]["cause"] in r["text"] for r in test)  # its own test split, facts kept
    assert {r["facts"]["emotion"] for r in test} <= set(proxy.FOLD.values())
