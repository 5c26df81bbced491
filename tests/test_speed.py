"""The speed report's arithmetic on known inputs, and the report written by a real (tiny) run."""
import pytest

from emosum import speed


def test_fit_recovers_a_linear_step_time():
    t = speed.StepTimer()
    clock = 0.0
    sizes = [400, 380, 360, 340, 300, 280, 250, 200, 180, 160, 140, 120, 100, 90]
    for n in sizes:  # start times of steps whose duration is 0.05 + 0.001 * tokens
        t.starts.append(clock)
        t.tokens.append(n)
        clock += 0.05 + 0.001 * n
    a, b = t.fit_line()
    assert a == pytest.approx(0.05) and b == pytest.approx(0.001)
    shapes = [(4, 50, 10, 200), (4, 20, 5, 90)]  # padded 240 and 100 tokens
    assert speed.predict_total((a, b), shapes, 5) == pytest.approx(2 * (0.29 + 0.15) + 0.29)


def test_prediction_waits_for_enough_seconds_of_steps_unless_the_run_is_short():
    def fits_at(planned, step_s, steps):
        t, fits = speed.StepTimer(), []
        for i in range(steps):
            t.starts.append(i * step_s)
            t.tokens.append(100 + i % 7)
            if t.ready(planned):
                t.fit_line()
                fits.append(len(t.starts) - 1 - speed.WARMUP_SKIP)  # complete steps timed
        return fits

    # 0.1 s steps: 10 steps are 1 s of noise; the first fit waits for 20 s, the refit for 60 s
    assert fits_at(planned=5000, step_s=0.1, steps=1000) == [200, 600]
    # a short run: a quarter of it is enough; no refit before it ends
    assert fits_at(planned=40, step_s=0.1, steps=40) == [10]
    # slow steps: 10 of them are already 20 s
    assert fits_at(planned=5000, step_s=5.0, steps=60) == [10, 50]


def test_padding_waste_of_random_batches():
    # two short and two long examples: random pairs waste more than sorted pairs would
    waste = speed.random_batch_waste([10, 10, 100, 100], [5, 5, 5, 5], batch=2, seed=0)
    assert 0 <= waste < 1
    assert speed.random_batch_waste([10, 10], [5, 5], batch=2, seed=0) == 0


def test_output_layer_share_grows_with_vocabulary():
    from transformers import MT5Config, MT5ForConditionalGeneration

    def share(vocab):
        cfg = MT5Config(vocab_size=vocab, d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=2)
        return speed.output_layer_share(MT5ForConditionalGeneration(cfg), 128, 128)

    assert share(1000) < share(32000) < share(250112)


def test_a_timed_run_waits_for_the_device_only_where_a_timing_window_closes(tmp_path, monkeypatch):
    """A host sync per step idles a GPU at small batches (the step is launch-bound): the timer
    syncs for the fit and at the end only, and still counts every real token."""
    import shutil

    from conftest import tiny_section, tiny_tokenized
    from emosum import trainer_ext
    from stages import train

    d = tiny_tokenized(tmp_path / "d")
    calls = []
    monkeypatch.setattr(trainer_ext, "device_sync", lambda: calls.append(1))
    monkeypatch.chdir(tmp_path)
    stats = train.run(tiny_section("model"), tiny_section("train", max_steps=30, save_steps=100, precision="fp32"),
                      d / "tokenizer", d / "tokenized", tmp_path / "model", None)
    shutil.rmtree(tmp_path / ".scratch", ignore_errors=True)
    assert stats["steps"] == 30
    assert 1 <= len(calls) <= 3  # the first fit, perhaps the refit, the last step (was 2 per step)
    sp = stats["speed"]
    assert sp["steady_steps"] == 30 - speed.WARMUP_SKIP and sp["steady_tokens_per_s"] > 0
    assert stats["tokens_per_s"] > sp["steady_tokens_per_s"] * 0.3  # all steps' tokens were counted


def test_auto_padding_only_for_bf16_on_a_cpu():
    from emosum import speed

    assert speed.pad_multiple("auto", "bf16", "cpu") == 16
    assert speed.pad_multiple("auto", "fp32", "cpu") is None
    assert speed.pad_multiple("auto", "bf16", "cuda") is None
    assert speed.pad_multiple(8, "fp32", "cpu") == 8 and speed.pad_multiple(None, "bf16", "cpu") is None


def test_a_bf16_cpu_run_pads_its_batches_to_16_and_an_fp32_run_does_not(tmp_path, monkeypatch, caplog):
    """The Trainer's own training batches (the dataloader the stage hands to speed.batch_shapes),
    not just the log line: every source and target length a multiple of 16 in bf16; in fp32 the
    tiny data's lengths stay as they are."""
    from conftest import tiny_section, tiny_tokenized
    from emosum import hf
    from stages import train

    if not hf.bf16_available():
        pytest.skip("this CPU has no bf16 units")
    d = tiny_tokenized(tmp_path / "d")
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO", logger="emosum.train")
    seen = {}
    real = speed.batch_shapes
    monkeypatch.setattr(speed, "batch_shapes", lambda loader, largest=None: seen.setdefault("shapes", real(loader, largest)))
    for precision in ("bf16", "fp32"):
        seen.clear()
        stats = train.run(tiny_section("model"), tiny_section("train", precision=precision, max_steps=2),
                          d / "tokenizer", d / "tokenized", tmp_path / f"model-{precision}", None)
        lengths = [n for _, src, tgt, _ in seen["shapes"] for n in (src, tgt)]
        assert stats["precision"] == precision and len(seen["shapes"]) > 1
        if precision == "bf16":
            assert "padded to a multiple of 16 tokens" in caplog.text
            assert all(n % 16 == 0 for n in lengths), lengths
        else:
            assert "batches padded to their longest example" in caplog.text
            assert any(n % 16 for n in lengths), lengths
