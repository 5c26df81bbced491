"""Shared fixtures: the real config shrunk for CPU, tiny data made by the demo generator, and a
temporary copy of the repository for tests that run real `dvc` commands."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tiny everything: a model of ~50k parameters trains a few steps in seconds on one core.
TINY_PARAMS = {
    "subsample": {"max_samples": 40, "validation_fraction": 0.1, "test_fraction": 0.1,
                  "max_eval_samples": 6},
    "model": {"scratch": {"d_model": 32, "d_ff": 64, "d_kv": 16, "num_heads": 2, "num_layers": 1,
                          "num_decoder_layers": 1, "embedding_std": None}},
    "tokenize": {"vocab_size": 4000, "max_source_length": 64, "max_target_length": 32},
    "train": {"epochs": 1, "max_steps": 4, "batch_size": 4, "save_steps": 2, "logging_steps": 1, "eval_batch_size": 8,
              "label_lexicon": str(ROOT / "data" / "demo" / "feelings.json")},  # tests run from other folders
    "evaluate": {"num_beams": 2, "max_new_tokens": 12, "batch_size": 4},
}


def deep_update(base: dict, new: dict) -> dict:
    for k, v in new.items():
        base[k] = deep_update(dict(base.get(k) or {}), v) if isinstance(v, dict) else v
    return base


def tiny_params(**overrides) -> dict:
    doc = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    return deep_update(deep_update(doc, TINY_PARAMS), overrides)


def tiny_section(_section: str, **over):
    """One validated params section of the tiny config, with `over` applied to it (the first
    argument is not `name`: model sections take a `name` key)."""
    from emosum import params

    return params.parse_section(_section, tiny_params(**({_section: over} if over else {}))[_section])


def write_demo_rows(path: Path, n: int = 60, seed: int = 1, heldout: int | None = None) -> Path:
    """n demo pairs (split "train") and, unless heldout=0, a few held-out ones (split "heldout")."""
    from emosum import dataio, demo_data

    dataio.write_jsonl(path, demo_data.generate(n, seed, max(6, n // 8) if heldout is None else heldout))
    return path


def tiny_tokenized(d: Path, n: int = 80, fact_columns=(), **tokenize_over) -> Path:
    """Demo rows -> subsample -> tokenize with the tiny config (`tokenize_over`: tokenize keys), into
    d/splits, d/tokenizer, d/tokenized."""
    from emosum import params
    from stages import subsample, tokenize

    src = write_demo_rows(d / "demo.jsonl", n=n)
    subsample.run(params.parse_section("data", {"path": str(src)}), tiny_section("subsample"), d / "splits",
                  fact_columns=list(fact_columns))
    tokenize.run(tiny_section("model"), tiny_section("tokenize", **tokenize_over), d / "splits", d / "tokenizer",
                 d / "tokenized")
    return d


def train_one_step(d: Path) -> Path:
    """The train stage, one step of the tiny config, on d/tokenizer and d/tokenized, into d/model
    (run from d: the stage writes its scratch folder under the working directory)."""
    import contextlib

    from stages import train

    with contextlib.chdir(d):
        train.run(tiny_section("model"), tiny_section("train", max_steps=1), d / "tokenizer", d / "tokenized",
                  d / "model", None)
    return d / "model"


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    # precision auto's remembered answers: per test session, not the user's ~/.cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg_cache"))
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_EVALUATE_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


def make_repo(dst: Path, **overrides) -> Path:
    """A git + DVC copy of the project in `dst` with tiny data and tiny params (`overrides`: params
    sections to update), ready for `dvc repro`."""
    dst.mkdir(parents=True)
    for name in ("dvc.yaml", ".gitignore", ".dvcignore", "pyproject.toml"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dst / name)
    for name in ("stages", "emosum"):
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    (dst / ".dvc").mkdir()
    for name in ("config", ".gitignore", "offline_plots.html"):
        shutil.copy2(ROOT / ".dvc" / name, dst / ".dvc" / name)
    write_demo_rows(dst / "data" / "demo" / "tiny.jsonl")
    doc = tiny_params(data={"path": "data/demo/tiny.jsonl"}, train={"max_steps": -1})  # epochs count
    doc = deep_update(doc, overrides)
    (dst / "params.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=test"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dst, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dst, check=True)
    subprocess.run([*git, "commit", "-qm", "fixture"], cwd=dst, check=True)
    return dst


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git + DVC copy of the project with tiny data and tiny params, ready for `dvc repro`."""
    return make_repo(tmp_path / "repo")


def run_cmd(args: list[str], cwd: Path, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command with this interpreter's bin folder first on PATH (dvc's `python -m stages.x`)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="t@example.com")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc
