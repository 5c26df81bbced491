"""Score a model on short hand-written texts: what a new user types first.

    python -m emosum.handwritten                       # model/ on tests/data/handwritten.jsonl
    python -m emosum.handwritten --model DIR --file texts.jsonl --markdown out.md

Each row holds a text, its cause as the text states it and its emotion (one of the demo's 15).
The texts were written by hand before any model was scored on them: one event and one feeling,
14-24 characters, in everyday wording that the demo generator was not built from. Scored as the
evaluate stage scores free text and labels (emosum/facts.py): the cause counts when at least half
of its characters are in the summary (`cause_half`; `cause` is the exact span), the emotion when
the summary names it and no other of the 15. The lead floor (the text's first k characters)
stands beside it; there is no training split here for a constant-summary floor. Summaries are
generated with params.yaml's evaluate section and source prefix, as `evaluate` generates them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emosum import dataio, facts, params

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "handwritten.jsonl"


def judge(pred: str, row: dict, emotions: set[str]) -> dict:
    """One summary: the exact cause, half of its characters, the emotion named and no other (the
    rules of emosum/facts.py for free text and labels)."""
    p = facts.normalize(pred)
    return {"cause": facts.normalize(row["cause"]) in p, "cause_half": facts.char_recall(pred, row["cause"]) >= 0.5,
            "emotion": facts._named(p, {facts.normalize(e) for e in emotions}) == {facts.normalize(row["emotion"])}}


def score(preds: list[str], rows: list[dict], emotions: set[str]) -> dict:
    """cause (exact), cause_half, emotion (the label and no other) and all (cause_half and emotion)."""
    flags = [judge(p, r, emotions) for p, r in zip(preds, rows)]
    n = max(1, len(rows))
    share = lambda key: round(sum(f[key] for f in flags) / n, 4)  # noqa: E731
    return {"examples": len(rows), "cause": share("cause"), "cause_half": share("cause_half"),
            "emotion": share("emotion"), "all": round(sum(f["cause_half"] and f["emotion"] for f in flags) / n, 4)}


def run(model_dir: str, path: Path, num_beams: int | None = None,
        params_file: str = "params.yaml") -> tuple[dict, list[dict]]:
    """Scores and the table of summaries, generated as the evaluate stage generates (params_file's
    evaluate section and source prefix, where it exists), num_beams overriding it."""
    from emosum import demo_data, rouge
    from emosum.summarize import generation_settings, summarize

    rows = dataio.read_jsonl(path)
    for i, r in enumerate(rows, 1):
        missing = [k for k in ("text", "cause", "emotion") if not r.get(k)]
        if missing:
            raise dataio.DataError(f"{path}: line {i}: no {', '.join(missing)}; each row needs text, cause, emotion")
    gen, prefix = generation_settings(params_file, num_beams=num_beams)
    preds = summarize([r["text"] for r in rows], model_dir, gen, prefix)
    emotions = set(demo_data.EMOTIONS)
    _, lead = rouge.lead_k([r["text"] for r in rows], [f"作者因{r['cause']}感到{r['emotion']}。" for r in rows])
    out = {"model": score(preds, rows, emotions), "lead_floor": score(lead, rows, emotions)}
    table = [{**r, "summary": p, "cause_chars": round(facts.char_recall(p, r["cause"]), 2),
              "emotion_right": judge(p, r, emotions)["emotion"]} for r, p in zip(rows, preds)]
    return out, table


def markdown(scores: dict, table: list[dict]) -> str:
    m, lead = scores["model"], scores["lead_floor"]
    lines = [f"{m['examples']} hand-written texts: cause (half its characters) **{m['cause_half']:.0%}** "
             f"(exact span {m['cause']:.0%}), emotion **{m['emotion']:.0%}**, both {m['all']:.0%}; the lead floor: "
             f"cause {lead['cause_half']:.0%}, emotion {lead['emotion']:.0%}.", "",
             "| text | cause | emotion | summary | cause chars | emotion right |", "|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['text']} | {r['cause']} | {r['emotion']} | {r['summary']} | {r['cause_chars']:.0%} | "
                     f"{'yes' if r['emotion_right'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emosum.handwritten", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="model")
    ap.add_argument("--file", default=str(DEFAULT_FILE))
    ap.add_argument("--num-beams", type=int, default=None, help="default: the evaluate section's")
    ap.add_argument("--params", default="params.yaml", help="generation settings from its evaluate section")
    ap.add_argument("--markdown", help="also write the table of texts and summaries here")
    args = ap.parse_args(argv)
    try:
        scores, table = run(args.model, Path(args.file), args.num_beams, args.params)
    except (dataio.DataError, params.ParamsError) as e:
        print(f"handwritten: {e}", file=sys.stderr)
        return 1
    text = markdown(scores, table)
    if args.markdown:
        with dataio.atomic_path(args.markdown) as tmp:
            tmp.write_text(text, encoding="utf-8")
    print(text)
    print(json.dumps(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
