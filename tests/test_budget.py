"""train.time_budget (emosum/budget.py) on the tiny model: the budget sets the steps, the schedule
reaches zero at the last step, a hard stop saves a usable model, a resumed run counts the time
spent; and the schedule's arithmetic."""
import json
import os
import time

import pytest

from conftest import tiny_section as section, tiny_tokenized
from emosum import budget, checkpoints, params
from stages import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_tokenized(tmp_path_factory.mktemp("budget"), n=200)


def run(data, tmp_path, monkeypatch, callbacks=(), started=None, **over):
    monkeypatch.chdir(tmp_path)  # .scratch/ lands here
    cfg = section("train", **{"max_steps": -1, "epochs": 1, "logging_steps": 1, **over})
    return train.run(section("model"), cfg, data / "tokenizer", data / "tokenized", tmp_path / "model", None,
                     callbacks=callbacks, started=started)


def test_durations_parse_and_bad_ones_name_the_forms():
    assert [budget.seconds(x) for x in ("90s", "45min", "2h", "1.5h", "3 min")] == [90, 2700, 7200, 5400, 180]
    for bad in ("3 minutes", "-5s", "0s", "soon"):
        with pytest.raises(ValueError, match="e.g. 90s, 45min, 2h"):
            budget.seconds(bad)
    with pytest.raises(params.ParamsError, match=r"train.time_budget: .*180s"):
        params.parse_section("train", {"time_budget": 180})


def test_schedule_warms_up_decays_to_zero_and_replans_without_a_jump():
    s = budget.LinearSchedule(warmup=10, total=100)
    assert s(0) == 0 and s(5) == 0.5 and s(10) == 1.0 and s(55) == pytest.approx(0.5) and s(100) == 0.0
    before = s(40)
    s.replan(40, 160, 0.1)  # more steps: the decay goes on from where it is, to zero at 160
    assert s(40) == pytest.approx(before) and s(160) == 0.0 and 0 < s(150) < s(100) < before
    s2 = budget.LinearSchedule(warmup=10, total=100)
    s2.replan(5, 40, 0.1)  # still warming up: the same ratio of the new length
    assert s2.warmup == 5 and s2(40) == 0.0


def test_plan_fits_steps_evaluations_and_saves_into_the_time_left():
    p = budget.Plan(100.0, (0.1, 0.0), [100] * 10, 1, 0.0, eval_s=2.0, save_s=1.0, final_save_s=0.5, save_steps=20,
                    eval_steps=None)
    n = p.steps_within(0, 30.0)
    assert p.cost(0, n) <= 30.0 < p.cost(0, n + 1)
    # 10 steps an epoch: each epoch end is a validation pass; every 20 steps a checkpoint
    assert p.evals(0, 25) == 3 and p.cost(0, 20) == pytest.approx(20 * 0.1 + 2 * 2.0 + 1 * 1.0 + 0.5)


def test_the_budget_sets_the_steps_and_the_schedule_reaches_zero_at_the_last_step(data, tmp_path, monkeypatch,
                                                                                  caplog):
    from transformers import TrainerCallback

    caplog.set_level("INFO", logger="emosum.train")
    lrs = {}

    class LR(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if "learning_rate" in (logs or {}):
                lrs[state.global_step] = logs["learning_rate"]  # the rate the step was taken with

        def on_train_end(self, args, state, control, lr_scheduler=None, **kw):
            lrs["after"] = lr_scheduler.get_last_lr()[0]  # where the schedule stands after the last step

    stats = run(data, tmp_path, monkeypatch, callbacks=[LR()], time_budget="8s", epochs=50)
    tb = stats["time_budget"]
    assert tb["stopped_by"] == "schedule" and tb["budget_s"] == 8
    assert stats["steps"] == (tb["replanned_steps"] or tb["planned_steps"]) != 50 * 10  # not what epochs say
    assert f"planned {tb['planned_steps']} steps" in caplog.text
    # warm-up, then a linear decay that reaches zero at the last step
    assert lrs.pop("after") == 0.0
    last = max(lrs)
    peak = max(lrs, key=lrs.get)
    tail = [lrs[k] for k in sorted(lrs) if k >= peak]
    assert last == stats["steps"] and lrs[peak] > 0 and all(a > b for a, b in zip(tail, tail[1:]))
    assert lrs[last] < lrs[peak] * 0.05  # the last step's rate: one step's share of the decay


def test_a_hard_stop_at_the_budget_saves_a_usable_model(data, tmp_path, monkeypatch, caplog):
    """The machine slows down: the clock runs 30 s ahead after step 3. Training stops where the final
    validation and save still fit, and the model is a finished run, not an error."""
    from transformers import AutoModelForSeq2SeqLM, TrainerCallback

    class SlowDown(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                monkeypatch.setattr(budget.Clock, "elapsed", lambda self: 10_000.0)

    stats = run(data, tmp_path, monkeypatch, callbacks=[SlowDown()], time_budget="1h")
    assert stats["time_budget"]["stopped_by"] == "time_budget"
    assert stats["steps"] == 3 < stats["time_budget"]["planned_steps"]
    model = AutoModelForSeq2SeqLM.from_pretrained(str(tmp_path / "model"))
    assert sum(p.numel() for p in model.parameters()) == stats["parameters"]
    assert "no room for another step" in caplog.text


def test_a_resumed_run_counts_the_time_already_spent(data, tmp_path, monkeypatch):
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 5:
                raise RuntimeError("simulated crash after checkpoint-4")

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(data, tmp_path, monkeypatch, callbacks=[Crash()], time_budget="12s", save_steps=4,
            started=time.monotonic() - 4)  # the stage had been running for 4 s
    ckpt = checkpoints.newest_intact(next((tmp_path / ".scratch" / "train").iterdir()))
    saved = checkpoints.read_state(ckpt)
    assert ckpt.endswith("checkpoint-4") and saved["spent_s"] >= 4 and saved["schedule"]["total"] > 5
    stats = run(data, tmp_path, monkeypatch, time_budget="12s", save_steps=4)
    tb = stats["time_budget"]
    assert stats["resumed_from_step"] == 4 and tb["spent_before_resume_s"] == pytest.approx(saved["spent_s"], abs=0.1)
    assert tb["total_s"] == pytest.approx(saved["spent_s"] + stats["wall_s"], abs=0.2)
    assert tb["planned_steps"] == saved["planned_steps"]  # the plan went on as it was, not made again
    # the plan's length, or the one re-estimate's, unless the hard stop came first
    assert stats["steps"] == (tb["replanned_steps"] or saved["schedule"]["total"]) or tb["stopped_by"] == "time_budget"


@pytest.mark.parametrize("slow_at,budget_s", [(None, 16), (0.5, 40)], ids=["alone", "slower-half-way"])
def test_the_stage_ends_within_5_percent_of_the_budget_as_the_machine_changes(data, tmp_path, monkeypatch, slow_at,
                                                                              budget_s):
    """A budget alone (16 s) and on a machine that gets slower half-way through (40 s: every step
    from then on takes SLOWER_S more, about three times as long): the re-estimates from the recent
    steps follow the machine, the plan is cut, and the stage ends within +-5%.

    Until 2026-12-07 the slowdown was a real CPU hog per core. Its effect is the scheduler's, not the
    code's: this tiny model's step went from 0.013 s to as much as 1.4 s at random, the final
    validation and save alike, and the stage ended at 38.7-40.6 s in five runs here but at 37.9 s in
    CI (the hard stop kept 2 s for one more such step and a slow save, then needed 0.1 s): the fourth
    CI failure of this test in five landings. A timed test is the wrong place for a figure the
    machine's scheduler sets; the slowdown here is the same each run, and what a real second
    training does to the budget is measured by bench/budget_share.py (two real trainings)."""
    from transformers import TrainerCallback

    SLOWER_S = 0.04
    slowed, started = [], time.monotonic()

    class SlowerMachine(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if slow_at is not None and (slowed or time.monotonic() - started > slow_at * budget_s):
                slowed.append(state.global_step)
                time.sleep(SLOWER_S)  # inside the step's interval: the step timer sees a slower step

    stats = run(data, tmp_path, monkeypatch, callbacks=[SlowerMachine()], time_budget=f"{budget_s}s", epochs=2000,
                precision="fp32", started=started)
    tb = stats["time_budget"]
    print(f"time budget {budget_s} s, {f'slower from step {slowed[0]}' if slowed else 'alone'}: stage {tb['total_s']} s, "
          f"{stats['steps']} steps (planned {tb['planned_steps']}), {tb['estimates']} estimates, replans {tb['replans']}, "
          f"while training {tb.get('while_training')}, stopped by {tb['stopped_by']}, train {tb['train_s']} s, wall {tb['wall_s']} s")
    assert bool(slowed) == (slow_at is not None)
    assert tb["total_s"] == pytest.approx(budget_s, rel=0.05), tb
    assert tb["estimates"] >= 3  # not once: again and again from the recent steps
    if slow_at is not None:  # slower steps from half-way: the plan was cut after they began
        assert tb["replans"] and tb["replans"][-1]["to"] < tb["planned_steps"], tb
        assert tb["replans"][-1]["step"] > slowed[0], tb


def test_a_late_estimate_never_adds_steps_and_the_last_step_is_not_refitted():
    """On a slowing machine an estimate at the last planned step found the run 0.8% late and refitted
    it to one step more (steps_within answers at least one step), which the hard stop then refused."""
    from types import SimpleNamespace

    class Clock:
        def __init__(self, t):
            self.t = t

        def elapsed(self):
            return self.t

    def keeper(now, total):
        plan = budget.Plan(100.0, (0.1, 0.0), [100] * 10, 1, 0.0, eval_s=2.0, save_s=1.0, final_save_s=0.5,
                           save_steps=1000, eval_steps=None)
        return budget.Keeper(plan, Clock(now), budget.LinearSchedule(warmup=10, total=total), 0.05, 10 ** 6, total,
                             0.0)

    for step in (270, 265, 250):
        state = SimpleNamespace(global_step=step, max_steps=270)
        keeper(99.0, 270).replan(state, (0.1, 0.0))  # 1 s left: late whatever comes next
        assert state.max_steps <= 270 and state.max_steps >= step
    state = SimpleNamespace(global_step=100, max_steps=270)
    k = keeper(10.0, 270)
    k.replan(state, (0.1, 0.0))  # early by far: more steps, as before
    assert state.max_steps > 270 and k.record["replans"][-1]["to"] == state.max_steps


def _keeper(fit_s: float, planned: int, steps_taken: int, step_s: float, budget_s: float = 16.0):
    """A Keeper planned at fit_s a step whose timer has seen `steps_taken` steps of step_s each."""
    from types import SimpleNamespace

    plan = budget.Plan(budget_s, (fit_s, 0.0), [100] * 10, 1, 0.0, eval_s=0.01, save_s=0.02, final_save_s=0.01,
                       save_steps=10 ** 6, eval_steps=None)
    clock = budget.Clock(time.monotonic() - 1.0)  # 1 s into the stage
    timer = SimpleNamespace(starts=[i * step_s for i in range(steps_taken + 1)], tokens=[100] * (steps_taken + 1))
    k = budget.Keeper(plan, clock, budget.LinearSchedule(warmup=1, total=planned), 0.05,
                      int(budget.GROW * planned), planned, 0.0, timer)
    k.train_start = time.monotonic()  # training has just begun: the first re-estimate is not due by time
    return k, SimpleNamespace(global_step=steps_taken, max_steps=planned)


def test_a_plan_measured_on_a_busy_moment_is_corrected_within_a_tenth_of_its_steps():
    """CI: the first plan measured 4x slower steps than training took (118 steps planned, all taken
    in 4.2 s of a 16 s budget, before the first re-estimate was due at a fifth of the budget). The
    first re-estimate now also comes at a tenth of the planned steps, and may grow the run past 2x."""
    k, state = _keeper(fit_s=0.12, planned=118, steps_taken=11, step_s=0.03)
    k.maybe_replan(state)
    assert k.record["estimates"] == 0 and state.max_steps == 118  # 11 steps: under a tenth, not due yet
    k, state = _keeper(fit_s=0.12, planned=118, steps_taken=12, step_s=0.03)
    k.maybe_replan(state)
    assert k.record["estimates"] == 1 and k.plan.step_s() == pytest.approx(0.03)
    assert state.max_steps > 3 * 118  # 0.03 s a step fills the 15 s left: about 4x the plan
    end = 1.0 + k.plan.cost(12, state.max_steps)  # 1 s into the stage, then the steps left and the final save
    assert budget.TARGET * 16.0 - 0.1 < end <= budget.TARGET * 16.0 + 0.01


def test_the_hard_stop_expects_the_slowest_recent_step_and_save():
    """One step in the last five took 0.5 s and one save 0.3 s: the reserve for the next step and the
    final validation and save counts them, not the plan's 0.03 s steps and the median save."""
    k, state = _keeper(fit_s=0.03, planned=100, steps_taken=20, step_s=0.03)
    calm = k.reserve_s()
    assert calm == pytest.approx(0.03 + 0.01 + 0.01, abs=1e-6)
    k.timer.starts[-3] -= 0.47  # step 18 of 20 took 0.5 s
    for took in (0.02, 0.3, 0.02):  # three saves, the median 0.02 (timed from step_end, set back: no sleeping)
        k.step_end = time.perf_counter() - took
        k.measured("save_s")
    assert k.plan.save_s == pytest.approx(0.02, abs=1e-3)
    assert k.reserve_s() == pytest.approx(0.5 + 0.01 + 0.01 * 0.3 / k.plan.save_s, rel=0.01)
