"""emosum-plan: -S parsed as `dvc exp run` takes it, a misspelt key refused with the stages' own
message, and every column in each --json row, measured on the tiny config."""
import json
from pathlib import Path

import pytest
import yaml

from conftest import run_cmd
from emosum import params, plan


def test_overrides_read_values_as_dvc_does():
    doc = {"train": {"epochs": 8}, "subsample": {"max_samples": 5000}, "model": {"source_prefix": ""}}
    doc = params.override(doc, "train.epochs=2")
    doc = params.override(doc, "subsample.max_samples=null")
    doc = params.override(doc, "model.source_prefix='summarize: '")
    doc = params.override(doc, "model.scratch.d_model=512")  # a nested key
    assert doc == {"train": {"epochs": 2}, "subsample": {"max_samples": None},
                   "model": {"source_prefix": "summarize: ", "scratch": {"d_model": 512}}}
    with pytest.raises(params.ParamsError, match="section.key=value"):
        params.override(doc, "train.epochs")


def test_an_unknown_key_is_refused_with_the_message_a_stage_gives(tmp_path, capsys):
    base = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text(encoding="utf-8"))
    bad = json.loads(json.dumps(base))
    bad["train"]["epochz"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(params.ParamsError) as stage:  # what `python -m stages.train` reports for it
        params.load("train", path=tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
    assert plan.main(["-S", "train.epochz=2", "--params", str(tmp_path / "params.yaml")]) == 1
    err = capsys.readouterr().err
    assert str(stage.value).replace(str(tmp_path / "params.yaml"), "params.yaml") in err
    assert "train.epochz: unknown key" in err


@pytest.mark.slow
def test_json_rows_carry_every_column_measured(repo):
    out = run_cmd(["emosum-plan", "--json", "--budget", "10min", "--batches", "4", "--passes", "1",
                   "-S", "train.epochs=2"], repo, timeout=300)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["row"] for r in rows] == ["params.yaml", "train.epochs=2"]
    for r in rows:
        assert "error" not in r, r
        for _, key, _ in plan.COLUMNS:
            assert key in r, key
        assert r["s_per_step"] > 0 and r["train_s"] > 0 and r["peak_memory_gb"] > 0.1
        assert r["checkpoint_mb"] > r["model_mb"] > 0 and r["precision"] in ("fp32", "bf16")
        assert r["fits_budget"] is True and 0 <= r["truncated_share"] <= 1
    one, two = rows
    assert two["steps"] == 2 * one["steps"] and two["samples"] == one["samples"] == 40
    assert two["train_s"] >= one["train_s"]
