"""Issue 6: the train stage data-parallel on 2 CPU processes (gloo), and a shared DVC remote."""
import json
import os
import re
import sys

import pytest
import yaml

from conftest import run_cmd, tiny_params, write_demo_rows
from emosum import params
from stages import subsample, tokenize

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    src = write_demo_rows(d / "demo.jsonl", n=80)
    doc = tiny_params(data={"path": str(src)})
    subsample.run(params.parse_section("data", doc["data"]), params.parse_section("subsample", doc["subsample"]),
                  d / "data" / "splits")
    tokenize.run(params.parse_section("model", doc["model"]), params.parse_section("tokenize", doc["tokenize"]),
                 d / "data" / "splits", d / "data" / "tokenizer", d / "data" / "tokenized")
    return d


def train_in(d, **train):
    doc = tiny_params(train={"max_steps": -1, "batch_size": 4, "global_batch_size": 8, "logging_steps": 1, **train},
                      model={"scratch": {"dropout_rate": 0.0}})
    (d / "params.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    proc = run_cmd([sys.executable, "-m", "stages.train"], d)
    return json.loads((d / "metrics" / "train.json").read_text()), proc.stdout + proc.stderr


def test_two_cpu_processes_match_one_process(workdir, tmp_path):
    one = tmp_path / "one"
    two = tmp_path / "two"
    for d in (one, two):
        d.mkdir()
        os.symlink(workdir / "data", d / "data", target_is_directory=True)
    stats1, _ = train_in(one, num_processes=1)
    stats2, log2 = train_in(two, num_processes=2)
    # both ranks start; the global batch, and so the steps, are the same as with one process
    assert len(re.findall(r"2 process\(es\), batch 4 x 2 x accumulation 1", log2)) == 2
    assert stats1["global_batch_size"] == stats2["global_batch_size"] == 8
    assert stats1["steps"] == stats2["steps"] == 5 and stats2["processes"] == 2
    assert set(stats1) == set(stats2)
    assert stats2["final_loss"] == pytest.approx(stats1["final_loss"], rel=0.02)
    # the validation loss is a mean over the validation tokens whatever the process count (it read 2x
    # before the token-weighted loss: the Trainer scaled it by the number of processes)
    # (2 ranks pad the validation set to equal shards, so not to the last digit)
    assert stats2["eval_loss"] == pytest.approx(stats1["eval_loss"], rel=0.05)
    # one writer: the model and the metrics once, no half-written leftovers from other ranks
    assert (two / "model" / "model.safetensors").exists()
    assert len(re.findall(r"trained \d+ steps .* model in", log2)) == 1
    assert [p.name for p in two.iterdir() if p.name.startswith(".model")] == []
    assert (two / "metrics" / "train_live" / "plots" / "metrics" / "loss.tsv").exists()


def test_bad_global_batch_fails_before_launch(workdir, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    os.symlink(workdir / "data", d / "data", target_is_directory=True)
    doc = tiny_params(train={"batch_size": 4, "global_batch_size": 12, "num_processes": 2})
    (d / "params.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    proc = run_cmd([sys.executable, "-m", "stages.train"], d, check=False)
    assert proc.returncode == 1
    assert "train.global_batch_size: 12 is not a multiple of train.batch_size 4 x 2 processes" in proc.stderr


def test_push_to_local_remote_and_pull_in_a_fresh_clone(repo, tmp_path):
    run_cmd(["dvc", "repro"], repo)
    remote = tmp_path / "remote"
    run_cmd(["dvc", "remote", "add", "-d", "team", str(remote)], repo)
    run_cmd(["git", "add", "-A"], repo)
    run_cmd(["git", "commit", "-qm", "trained"], repo)
    run_cmd(["dvc", "push"], repo)
    clone = tmp_path / "clone"
    run_cmd(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "model").exists()
    run_cmd(["dvc", "pull"], clone)
    assert (clone / "model" / "model.safetensors").exists()
    assert "Data and pipelines are up to date" in run_cmd(["dvc", "status"], clone).stdout
    assert "Running stage" not in run_cmd(["dvc", "repro"], clone).stdout
