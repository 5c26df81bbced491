import gzip
import json

from conftest import ROOT
from emosum import demo_data


def test_generator_is_deterministic_and_varied():
    a, b = demo_data.generate(300, seed=3), demo_data.generate(300, seed=3)
    assert a == b
    assert demo_data.generate(300, seed=4) != a
    assert {r["type"] for r in a} == {"diary", "help", "chat"}
    assert len({r["emotion"] for r in a}) >= 12
    assert all(10 <= len(r["summary"]) <= 60 for r in a)


def test_committed_file_is_what_the_generator_makes():
    path = ROOT / "data" / "demo" / "emotions.jsonl.gz"
    assert path.stat().st_size < 3_000_000
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        committed = [json.loads(line) for line in fh]
    assert committed == demo_data.generate(13_000, seed=0)
    lengths = sorted(len(r["text"]) for r in committed)
    assert lengths[0] < 40 and lengths[-1] > 1500  # one sentence up to far past 512 tokens


def test_every_text_says_what_its_summary_states():
    """Chat interjections used to replace the cause or the feeling too: 8.6% of the summaries
    stated something their text did not say."""
    for r in demo_data.generate(3000, seed=0):
        told = next(c[1] for c in demo_data.CAUSES if c[2] == r["cause"])
        assert told in r["text"], r
        assert any(f in r["text"] for f in demo_data.EMOTIONS[r["emotion"]][1]), r
        assert r["cause"] in r["summary"] and r["emotion"] in r["summary"]
