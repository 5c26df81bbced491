"""The `summarize` command on a tiny trained model: text, file and stdin, one summary per input, in order."""
import json
import subprocess
import sys

import pytest

from conftest import SHARED_DATA, tiny_section as section, tiny_tokenized
from emosum import params, summarize
from stages import train

TEXTS = ["今天被老板当众批评了，委屈得想哭。",
         "因为公司突然宣布裁员，我也在名单上，心里一直七上八下。最近天气忽冷忽热。又下雨了，地铁里挤得喘不过气。",
         "下个月就要和相恋多年的她结婚了，每天都在倒数日子。"]



@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import os

    d = tiny_tokenized(tmp_path_factory.mktemp("sum"))
    cwd = os.getcwd()
    os.chdir(d)
    try:
        train.run(section("model"), section("train"), d / "tokenizer", d / "tokenized", d / "model", None)
    finally:
        os.chdir(cwd)
    card = (d / "model" / "README.md").read_text(encoding="utf-8")
    assert "Base checkpoint: none" in card and "40 training pairs" in card
    return d / "model"


def test_text_argument(model_dir, capsys):
    assert summarize.main([TEXTS[0], "--model", str(model_dir), "--params", "none.yaml",
                           "--max-new-tokens", "8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].strip()


def test_file_keeps_input_order_and_matches_one_by_one(model_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in TEXTS), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert summarize.main(["--file", str(src), "--output", str(out), "--model", str(model_dir),
                           "--params", "none.yaml", "--num-beams", "1", "--max-new-tokens", "8"]) == 0
    rows = [json.loads(line) for line in open(out, encoding="utf-8")]
    assert [r["text"] for r in rows] == TEXTS and all(r["summary"] for r in rows)
    gen = params.parse_section("evaluate", {"num_beams": 1, "max_new_tokens": 8, "batch_size": 1})
    assert [r["summary"] for r in rows] == [summarize.summarize([t], str(model_dir), gen)[0] for t in TEXTS]


def test_stdin(model_dir):
    proc = subprocess.run([sys.executable, "-m", "emosum.summarize", "--model", str(model_dir), "--params",
                           "none.yaml", "--max-new-tokens", "8"], input="\n".join(TEXTS) + "\n",
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["text"] for r in rows] == TEXTS


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    assert summarize.main(["文本", "--model", str(tmp_path / "nope")]) == 1
    assert "no trained model here" in capsys.readouterr().err


def test_a_checkpoint_without_a_saved_length_is_one_clear_line(model_dir, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    cfg = json.loads((other / "generation_config.json").read_text())
    del cfg["max_new_tokens"]  # as in a checkpoint not trained by this pipeline
    (other / "generation_config.json").write_text(json.dumps(cfg))
    assert summarize.main([TEXTS[0], "--model", str(other), "--params", "none.yaml"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the weight-loading progress bar
    assert last.startswith("summarize: evaluate.max_new_tokens: auto needs max_new_tokens in") and "Traceback" not in last
    assert "--max-new-tokens" in last
    assert summarize.main([TEXTS[0], "--model", str(other), "--params", "none.yaml", "--max-new-tokens", "8"]) == 0


DIALOGUES = SHARED_DATA / "cpsycound" / "dialogues.jsonl"


@pytest.mark.skipif(not DIALOGUES.exists(), reason=f"{DIALOGUES} absent (real data lives in ../shared/data)")
def test_real_counselling_dialogues_get_one_summary_each(model_dir, tmp_path):
    """600 real multi-turn dialogues (about 800 characters, far past the model's 64 tokens): one row out
    for each row in, in the same order."""
    out = tmp_path / "out.jsonl"
    assert summarize.main(["--file", str(DIALOGUES), "--output", str(out), "--model", str(model_dir),
                           "--params", "none.yaml", "--num-beams", "1", "--max-new-tokens", "8"]) == 0
    src = [json.loads(line) for line in open(DIALOGUES, encoding="utf-8")]
    rows = [json.loads(line) for line in open(out, encoding="utf-8")]
    assert len(rows) == len(src) == 600
    assert [r["text"] for r in rows] == [r["text"] for r in src]
    assert sum(bool(r["summary"]) for r in rows) > 0.9 * len(rows)


def test_handwritten_set_is_scored_like_the_evaluate_stage(model_dir, tmp_path):
    """The hand-written texts (tests/data/handwritten.jsonl): at least 30, 14-40 characters, each
    stating its cause; scored by the same rules as free-text and label facts."""
    from emosum import demo_data, handwritten

    rows = [json.loads(line) for line in open(handwritten.DEFAULT_FILE, encoding="utf-8")]
    assert len(rows) >= 30 and all(14 <= len(r["text"]) <= 40 and r["cause"] in r["text"] for r in rows)
    assert {r["emotion"] for r in rows} == set(demo_data.EMOTIONS)
    # the scoring rules, on summaries written by hand
    two = rows[:2]
    right = [f"作者因{r['cause']}感到{r['emotion']}。" for r in two]
    assert handwritten.score(right, two, set(demo_data.EMOTIONS)) == \
        {"examples": 2, "cause": 1.0, "cause_half": 1.0, "emotion": 1.0, "all": 1.0}
    half = [f"作者因{two[0]['cause'][:len(two[0]['cause']) // 2 + 1]}感到{two[0]['emotion']}和开心。", "作者因天气感到难过。"]
    got = handwritten.score(half, two, set(demo_data.EMOTIONS))
    assert got["cause"] == 0 and got["cause_half"] == 0.5 and got["emotion"] == 0  # two emotions named: wrong
    # the real model path: a tiny model's summaries, the lead floor beside them, a markdown table
    out = tmp_path / "hand.md"
    assert handwritten.main(["--model", str(model_dir), "--file", str(handwritten.DEFAULT_FILE), "--num-beams", "1",
                             "--markdown", str(out)]) == 0
    table = out.read_text(encoding="utf-8")
    assert table.count("\n| ") == len(rows) + 1 and "the lead floor" in table


def test_handwritten_generates_with_the_params_files_evaluate_section(model_dir, tmp_path):
    """`python -m emosum.handwritten` scores summaries generated as the evaluate stage generates
    them: the params file's evaluate section (here no_repeat_ngram_size; num_beams given over it)."""
    from emosum import handwritten

    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in
                             [json.loads(line) for line in open(handwritten.DEFAULT_FILE, encoding="utf-8")][:8]),
                     encoding="utf-8")
    runs = {}
    for n in (0, 1):
        p = tmp_path / f"params{n}.yaml"
        p.write_text(f"evaluate:\n  num_beams: 3\n  max_new_tokens: 16\n  no_repeat_ngram_size: {n}\n", encoding="utf-8")
        runs[n] = [r["summary"] for r in handwritten.run(str(model_dir), texts, 1, str(p))[1]]
    # the tiny tokenizer has one piece per character; stray byte pieces decode to U+FFFD, one per byte
    repeats = lambda s: len(set(s.replace("\ufffd", ""))) < len(s.replace("\ufffd", ""))  # noqa: E731
    assert any(map(repeats, runs[0]))          # the tiny model repeats itself when allowed...
    assert not any(map(repeats, runs[1])), runs[1]  # ...and never with no_repeat_ngram_size 1 from the file


def test_copy_bias_flag_overrides_the_params_file(model_dir, tmp_path, monkeypatch, capsys):
    p = tmp_path / "params.yaml"
    p.write_text("evaluate:\n  copy_bias: 40.0\n  max_new_tokens: 8\n", encoding="utf-8")
    seen = []
    monkeypatch.setattr(summarize, "summarize", lambda texts, model, gen, prefix, progress: seen.append(gen) or [""])
    for flag in ([], ["--copy-bias", "0"]):
        assert summarize.main([TEXTS[0], "--model", str(model_dir), "--params", str(p), *flag]) == 0
    assert [g.copy_bias for g in seen] == [40.0, 0.0]
    assert summarize.main([TEXTS[0], "--model", str(model_dir), "--params", str(p), "--copy-bias", "-1"]) == 1
    assert "copy_bias" in capsys.readouterr().err
