"""Real `dvc repro` / `dvc exp run` / `dvc metrics diff` in a temporary copy of the repository."""
import json
import re
import sys

import pytest
import yaml

from conftest import run_cmd

pytestmark = pytest.mark.slow


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def test_repro_caching_and_experiments(repo):
    out = run_cmd(["dvc", "repro"], repo).stdout
    assert ran_stages(out) == ["subsample", "tokenize", "train", "evaluate", "cleanup"]
    metrics = json.loads((repo / "metrics" / "eval.json").read_text())
    assert {"rouge1", "rouge2", "rougeL", "word_rougeL", "lead_rougeL", "gen_chars_mean"} <= set(metrics)
    assert (repo / "model" / "model.safetensors").exists()
    assert not (repo / ".scratch").exists()  # cleanup removed the checkpoints
    assert json.loads((repo / "metrics" / "cleanup.json").read_text())["bytes_freed"] > 0
    assert run_cmd(["dvc", "status"], repo).stdout.strip().endswith("Data and pipelines are up to date.")
    # every metrics file reads back (dvclive's per-step TSVs, once declared as metrics, failed as YAML)
    shown = json.loads(run_cmd(["dvc", "metrics", "show", "--json"], repo).stdout)
    unread = [(rev, path) for rev, v in shown.items() for path, m in v.get("data", {}).items() if "error" in m]
    assert not unread, unread

    # nothing changed: nothing runs
    again = run_cmd(["dvc", "repro"], repo).stdout
    assert ran_stages(again) == []
    assert again.count("didn't change, skipping") == 5

    # commit this run as the baseline for metrics diff
    run_cmd(["git", "add", "-A"], repo)
    run_cmd(["git", "commit", "-qm", "baseline run"], repo)

    # an evaluate knob reruns evaluate and what depends on it, nothing upstream
    doc = yaml.safe_load((repo / "params.yaml").read_text())
    doc["evaluate"]["num_beams"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    assert ran_stages(run_cmd(["dvc", "repro"], repo).stdout) == ["evaluate", "cleanup"]
    # fewer fact columns: the splits carry other facts, but the tokens are the same, so no retraining
    doc["evaluate"]["fact_columns"] = ["emotion"]
    (repo / "params.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    assert ran_stages(run_cmd(["dvc", "repro"], repo).stdout) == ["subsample", "tokenize", "evaluate", "cleanup"]
    assert set(json.loads((repo / "metrics" / "eval.json").read_text())["fact_recall"]) == {"emotion", "all"}
    run_cmd(["git", "checkout", "--", "params.yaml"], repo)
    run_cmd(["dvc", "checkout"], repo)

    # an experiment on epochs reruns exactly train, evaluate and cleanup
    steps_1 = json.loads((repo / "metrics" / "train.json").read_text())["steps"]
    exp = run_cmd(["dvc", "exp", "run", "-n", "epochs2", "-S", "train.epochs=2"], repo).stdout
    assert ran_stages(exp) == ["train", "evaluate", "cleanup"]
    assert json.loads((repo / "metrics" / "train.json").read_text())["steps"] == 2 * steps_1

    diff = run_cmd(["dvc", "metrics", "diff", "--json"], repo).stdout
    diff = json.loads(diff)
    # the training metrics must differ; which ROUGE figures move on a tiny model is chance
    assert {"steps", "final_loss"} <= set(diff["metrics/train.json"])
    assert {"rouge1", "rougeL", "word_rougeL", "fact_recall.emotion"} & set(diff["metrics/eval.json"])
    show = run_cmd(["dvc", "exp", "show", "--json"], repo).stdout
    assert "train.epochs" in show or '"epochs": 2' in show

    # issue 5: the plots DVC declares exist and render with the offline template
    doc = yaml.safe_load((repo / "dvc.yaml").read_text())
    for plot in doc["plots"]:
        for path in next(iter(plot.values()))["y"]:
            assert (repo / path).exists(), path
    assert (repo / "metrics" / "quality_cost.json").exists() and (repo / "metrics" / "predictions.md").exists()
    run_cmd(["dvc", "plots", "show", "-o", "plots_html"], repo)
    page = (repo / "plots_html" / "index.html").read_text(encoding="utf-8")
    assert "vegaEmbed" in page and not re.search(r"<script[^>]+src=[\"']?https?:", page)

    # the comparison report reads both runs' numbers back from their metrics files
    rep = run_cmd([sys.executable, "-m", "emosum.report", "main", "epochs2"], repo).stdout
    text = (repo / "metrics" / "report.md").read_text(encoding="utf-8")
    head_eval = json.loads(run_cmd(["git", "show", "HEAD:metrics/eval.json"], repo).stdout)
    exp_eval = json.loads((repo / "metrics" / "eval.json").read_text())
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| main") or
            line.startswith("| epochs2")}
    assert f"{head_eval['rougeL']:.2f}" in rows["main"] and f"{exp_eval['rougeL']:.2f}" in rows["epochs2"]
    assert "train.epochs=1" in rows["main"] and "train.epochs=2" in rows["epochs2"]
    assert f"| {exp_eval['distinct_predictions_share']:.0%} |" in rows["epochs2"]
    # both floors and every fact recall, the model's and the floors', per run
    assert f"| {exp_eval['constant_rougeL']:.2f} |" in rows["epochs2"]
    assert "| emotion recall | lead emotion recall | constant emotion recall |" in text
    cells = [c.strip() for c in rows["epochs2"].split("|")]
    assert f"{exp_eval['fact_recall']['emotion']:.0%}" in cells
    assert f"{exp_eval['constant_fact_recall']['cause']:.0%}" in cells
    assert "keeps" in text and "faster" in text and "fact recall" in text and rep
    png = (repo / "metrics" / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    assert matplotlib.image.imread(str(repo / "metrics" / "report.png")).shape[0] > 100


def test_plot_template_is_offline():
    from conftest import ROOT

    page = (ROOT / ".dvc" / "offline_plots.html").read_text(encoding="utf-8")
    assert "{plot_divs}" in page and "{scripts}" not in page
    assert not re.search(r"<script[^>]+src=", page) and "http://" not in page.split("<script>")[0]
    assert "vegaEmbed" in page
