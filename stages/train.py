"""Stage 3: fine-tune (or train from scratch) an mT5 model with Seq2SeqTrainer.

    python -m stages.train                # what `dvc repro train` runs

Reads params `model`, `train`, `hub`; data/tokenizer and data/tokenized. Writes the finished
model and tokenizer to model/, metrics/train.json and the dvclive loss curves in
metrics/train_live/. Trainer checkpoints go to .scratch/train/<fingerprint>/, never model/:
the fingerprint hashes the params and data, so an interrupted `dvc repro` resumes from the last
complete checkpoint of the same run and never from another run's.
"""
from __future__ import annotations

import time

STARTED = time.monotonic()  # the stage's start, before the heavy imports: what a time budget counts from

import hashlib  # noqa: E402
import json
import logging
import sys
from pathlib import Path

from emosum import (augment, budget, checkpoints, dataio, guide, hf, launch, machine, memory, params, prune, selection, speed,
                    stopping)
from emosum import precision as prec
from emosum.trainer_ext import (TrainingStopped, divergence_guard, model_card, predict, save_model,
                                 step_aligned_dvclive, timed_trainer, token_mean_loss)
from emosum.logs import setup_logging

log = logging.getLogger("emosum.train")
SCRATCH_DIR = Path(".scratch/train")
SAVE_TOTAL_LIMIT = 2  # checkpoints kept for resuming


def fingerprint(model: params.ModelParams, cfg: params.TrainParams, data_dir: Path) -> str:
    h = hashlib.sha256(json.dumps([model.model_dump(), cfg.model_dump()], sort_keys=True).encode())
    for f in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        h.update(f.relative_to(data_dir).as_posix().encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def run(model_p: params.ModelParams, cfg: params.TrainParams, tok_dir: Path, data_dir: Path,
        out_dir: Path, live_dir: Path | None, callbacks=(), started: float | None = None) -> dict:
    """Train and save to out_dir; `live_dir` None skips the dvclive curves (the speed benchmark).
    `started`: the stage's start (time.monotonic()), which a time budget counts from. Ctrl-C and
    SIGTERM end the step in progress, checkpoint it and raise TrainingStopped (emosum/stopping.py)."""
    stop = stopping.GracefulStop()
    with stop, machine.Share("train") as share:
        try:
            return _run(model_p, cfg, tok_dir, data_dir, out_dir, live_dir, callbacks,
                        time.monotonic() if started is None else started, stop, share)
        except stopping.Interrupted as e:  # a second signal, or one outside the training loop
            raise TrainingStopped(stopping.interrupted_message(
                e.name, checkpoints.newest_intact(stop.run_dir, rename=False) if stop.run_dir else None)) from None


def _run(model_p, cfg, tok_dir, data_dir, out_dir, live_dir, callbacks, started: float, stop, share) -> dict:
    import torch
    from datasets import load_from_disk
    from transformers import (DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments,
                              set_seed)

    loaded = machine.before_start("training")
    precision = hf.pick_precision(cfg.precision, cfg.allow_fp16)
    world, main_rank = launch.world_size(), launch.is_main_process()
    accum = launch.accumulation(cfg, world)
    set_seed(cfg.seed)
    tok = hf.load_tokenizer(str(tok_dir))
    ds = load_from_disk(str(data_dir))
    copy = model_p.copy_options()
    model = hf.scratch_model(model_p.scratch, tok, model_p.copy_head, **copy) if hf.is_scratch(model_p.name) \
        else hf.load_pretrained(model_p.name, model_p.copy_head, **copy)
    if model_p.copy_head:  # a training-time weight (a saved copy-head checkpoint keeps its own layers, not this)
        model.config.copy_alignment = model_p.copy_alignment
    n_params_before = sum(p.numel() for p in model.parameters())
    keep = prune.kept_ids(tok_dir)
    if keep is not None:
        prune.prune_model(model, keep)
    n_params = sum(p.numel() for p in model.parameters())
    if cfg.feeling_tags > 0:  # a training aid, dropped before saving (so after counting the parameters)
        if not hasattr(model, "add_feeling_head"):
            raise params.ParamsError("train.feeling_tags: the feeling head is trained beside the copy head "
                                     "(emosum/pointer.py); set model.copy_head: true, or train.feeling_tags: 0")
        model.add_feeling_head(cfg.feeling_tags)
    if keep is not None:
        log.info("vocabulary pruned to %d ids: %.1fM -> %.1fM parameters", len(keep), n_params_before / 1e6,
                 n_params / 1e6)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    log.info("model %s: %.1fM parameters, vocab %d; device %s, %d threads, precision %s; %d process(es), "
             "batch %d x %d x accumulation %d", model_p.name, n_params / 1e6, model.config.vocab_size, device,
             torch.get_num_threads(), precision, world, cfg.batch_size, world, accum)

    run_dir = stop.run_dir = SCRATCH_DIR / fingerprint(model_p, cfg, data_dir)
    resume = checkpoints.newest_intact(run_dir, rename=main_rank)  # only rank 0 moves damaged folders aside
    log.info("resuming from %s (step %s; same params and data)" % (resume, resume.split("-")[-1]) if resume else
             "starting fresh; checkpoints in %s" % run_dir)
    saved = checkpoints.read_state(resume)
    clock = budget.Clock(started, saved.get("spent_s", 0.0))  # a resumed run counts the time already spent
    disk = checkpoints.check_space(run_dir, n_params, cfg.optimizer, keep=SAVE_TOTAL_LIMIT)
    collate = lambda pad: DataCollatorForSeq2Seq(tok, model=model, label_pad_token_id=-100,  # noqa: E731
                                                 pad_to_multiple_of=pad)
    probe_info = None
    if precision == "auto":
        precision, probe_info = prec.for_run(model, ds["train"], collate(None), cfg, device, world, accum, run_dir,
                                             resume, token_mean_loss)
    pad = speed.pad_multiple(cfg.pad_to_multiple_of, precision, device)
    collator = collate(pad)
    noise = swap = None
    if cfg.copy_noise > 0:  # training batches only; validation and the probes above see the data as it is
        noise = augment.CopyNoise(tok, ds["train"]["input_ids"], cfg.copy_noise, cfg.seed)
        collator = noise.collator(collator)
        log.info("copy noise: each copied character of a training pair swapped with probability %.2f (%d "
                 "characters can be, the %d most frequent never)", cfg.copy_noise, len(noise.pool), augment.PROTECT_TOP)
    if cfg.label_swap > 0:  # outermost: copy noise then sees the swapped pair
        swap = augment.LabelSwap(tok, dataio.read_lexicon(cfg.label_lexicon), cfg.label_swap, cfg.seed,
                                 max(ds["train"]["length"]) if "length" in ds["train"].column_names
                                 else max(map(len, ds["train"]["input_ids"])))
        collator = swap.collator(collator)
        log.info("label swap: the labels of %.0f%% of the training pairs permuted each epoch (%d labels, %d "
                 "wordings from %s; %d skipped: a character not one piece)", 100 * cfg.label_swap,
                 len(swap.labels), len(swap.ids), cfg.label_lexicon, swap.skipped)
    if cfg.feeling_tags > 0:  # outermost: it tags what the model reads, after the swaps
        tagger = augment.FeelingTags(tok, dataio.read_lexicon(cfg.label_lexicon))
        collator = tagger.collator(collator)
        held = sum(1 in tagger.tags(x, y) for x, y in zip(ds["train"]["input_ids"], ds["train"]["labels"]))
        log.info("feeling tags (weight %s): %d of %d training pairs hold a wording of their summary's label "
                 "(%d wordings of %d labels from %s)", cfg.feeling_tags, held, len(ds["train"]), len(tagger.ids),
                 len(tagger.labels), cfg.label_lexicon)
        if not held:
            log.warning("feeling tags: no training pair holds a wording of its summary's label in %s: the head "
                        "learns nothing; write the data's labels and wordings there, or set train.feeling_tags: 0",
                        cfg.label_lexicon)
    log.info("training in %s; batches padded to %s", precision, f"a multiple of {pad} tokens" if pad else
             "their longest example")
    args = Seq2SeqTrainingArguments(
        output_dir=str(run_dir), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=accum, learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio, lr_scheduler_type=cfg.lr_scheduler,
        optim=cfg.optimizer, bf16=precision == "bf16", fp16=precision == "fp16", seed=cfg.seed,
        tf32=True if precision == "tf32" else None,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        length_column_name="length",
        eval_strategy="steps" if cfg.eval_steps else "epoch", eval_steps=cfg.eval_steps, save_strategy="steps",
        save_steps=cfg.save_steps, save_total_limit=SAVE_TOTAL_LIMIT, logging_steps=cfg.logging_steps,
        logging_nan_inf_filter=False,  # a NaN loss must reach the divergence guard, not be averaged away
        logging_first_step=True, report_to="none", use_cpu=device == "cpu", torch_compile=cfg.torch_compile,
        torch_compile_mode=cfg.torch_compile_mode if cfg.torch_compile else None,
        dataloader_num_workers=0, remove_unused_columns=True)
    if live_dir is not None and main_rank:  # one writer: rank 0
        from dvclive import Live

        # dvcyaml=None: dvc.yaml declares the plots itself; Live would rewrite it otherwise
        callbacks = [step_aligned_dvclive(Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)),
                     *callbacks]
    timer, keeper = speed.StepTimer(), []
    committed = lambda: {"spent_s": round(clock.elapsed(), 2), **(keeper[0].saved() if keeper else {})}  # noqa: E731
    trainer = timed_trainer(Seq2SeqTrainer, timer)(
        model=model, args=args, train_dataset=ds["train"], eval_dataset=ds["validation"],
        data_collator=collator, processing_class=tok,
        callbacks=[divergence_guard(cfg.divergence_factor, cfg.divergence_patience), stop.callback(),
                   checkpoints.state_writer(committed), *([noise.callback()] if noise else []),
                   *([swap.callback()] if swap else []), *callbacks],
        compute_loss_func=token_mean_loss)
    biggest: list = []
    shapes = speed.batch_shapes(trainer.get_train_dataloader(), biggest)
    mem = memory.predict(model, biggest, precision, device, cfg.optimizer, token_mean_loss)
    label_lens = [len(x) for x in ds["train"]["labels"]]
    info = speed.report(model, precision, device, torch.get_num_threads(), shapes, ds["train"]["length"],
                        label_lens, cfg.batch_size, cfg.seed, cfg.group_by_length, tok.model_max_length,
                        keep is not None, measured=probe_info is not None)
    if cfg.time_budget:
        sizes = [speed.padded(s) for s in shapes]
        keeper.append(budget.start(trainer, model, cfg, precision, device, probe_info,
                                   prec.probe_batches(ds["train"], collator, cfg.batch_size), sizes, accum, run_dir,
                                   clock, saved, token_mean_loss, timer,
                                   lambda: collator([ds["train"][i] for i in range(cfg.batch_size)]),
                                   speed.batches_at(trainer.get_train_dataloader(), budget.spread(sizes))))
        trainer.add_callback(keeper[0].callback())
    trainer.add_callback(share.callback())
    watch = machine.SlowWatch(timer, expected_step(keeper[0] if keeper else None, probe_info, precision, timer),
                              torch.get_num_threads(), device, share=share)
    trainer.add_callback(watch.callback())

    timer.on_ready = lambda fit, steps: predict(info, timer, fit, shapes, steps)
    t0 = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    # torch's zip writer reports a full disk as a RuntimeError, the tokenizers library (saving the
    # tokenizer with a checkpoint) as a bare Exception: out_of_space decides, anything else re-raises
    except Exception as e:  # noqa: BLE001
        if not checkpoints.out_of_space(e, run_dir, checkpoints.size_bytes(n_params, cfg.optimizer)):
            raise
        raise TrainingStopped(checkpoints.no_space_message(e, run_dir, trainer.state.global_step, disk,
                                                           SAVE_TOTAL_LIMIT)) from None
    if stop.name:
        raise TrainingStopped(stop.message(trainer.state.global_step, checkpoints.newest_intact(run_dir, False)))
    train_s = time.perf_counter() - t0
    info.update(timer.steady(timer.end or time.perf_counter()))
    train_peak = memory.peak_since_probe(device) if mem else None  # the training's peak, against the prediction
    state = trainer.state
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    evals = [h["eval_loss"] for h in state.log_history if "eval_loss" in h]
    # generation's default length (evaluate.max_new_tokens: auto): the longest training summary, eos included
    model.generation_config.max_new_tokens = max(label_lens)
    if cfg.feeling_tags > 0:
        model.drop_feeling_head()  # saved as it is used: summarize never reads the head
    if trainer.is_world_process_zero():
        card = model_card(model_p, cfg, model, ds, keep, n_params_before, precision, state.global_step, losses,
                          evals, (tok_dir / selection.FILE).is_file(), (tok_dir / guide.FILE).is_file())
        save_model(trainer, tok, tok_dir, card, out_dir)
    wall = time.monotonic() - started  # the stage's start to the saved model: the time a budget counts
    samples = state.global_step * cfg.batch_size * accum * world
    tokens = timer.real_tokens() * world  # real (non-padding) tokens this run, all ranks alike
    steps_run = state.global_step - (int(Path(resume).name.split("-")[1]) if resume else 0)
    stats = {
        "final_loss": round(losses[-1], 4) if losses else None,
        "best_loss": round(min(losses), 4) if losses else None,
        "train_loss_mean": round(result.training_loss, 4),
        "eval_loss": round(evals[-1], 4) if evals else None,
        "steps": state.global_step, "steps_this_run": steps_run, "resumed_from_step": state.global_step - steps_run,
        "epochs": round(state.epoch or 0, 3), "train_samples": len(ds["train"]),
        "wall_s": round(wall, 1), "train_s": round(train_s, 1), "s_per_step": round(train_s / max(1, steps_run), 4),
        "samples_per_s": round(samples * steps_run / max(1, state.global_step) / train_s, 2),
        "tokens_per_s": round(tokens / train_s, 1),
        "global_batch_size": cfg.batch_size * accum * world, "processes": world,
        "peak_memory_gb": round(memory.process_peak_gb(), 3),
        "memory": {**mem, "actual_peak_gb": round(train_peak / 2 ** 30, 3) if train_peak else None,
                   "prediction_error": round(mem["predicted_peak_gb"] * 2 ** 30 / train_peak - 1, 3)
                   if mem.get("predicted_peak_gb") and train_peak else None},
        "parameters": n_params, "parameters_before_pruning": n_params_before,
        "vocab_size": model.config.vocab_size, "max_summary_tokens": model.generation_config.max_new_tokens,
        "precision": precision, "precision_probe": probe_info, "device": device, "disk": disk,
        "predicted_train_s": info.get("predicted_train_s"), "actual_train_s": round(train_s, 1),
        # only meaningful when the run went the whole way (a callback may stop it early)
        "prediction_error": round(info["predicted_train_s"] / train_s - 1, 3)
        if info.get("predicted_train_s") and state.global_step == state.max_steps and not resume else None,
        "speed": info,
        # the cores this run took among the emosum runs on the machine, and what slowed it
        "cores": {**share.record(), "loaded_at_start": loaded}, "slow_run": {**watch.record(),
                                                                         "reference": watch.reference},
    }
    if keeper:
        stats["time_budget"] = {**keeper[0].record, "steps": state.global_step, "epochs": stats["epochs"],
                                "train_s": stats["train_s"], "wall_s": stats["wall_s"],
                                "total_s": round(clock.spent_before + wall, 1)}
    if trainer.is_world_process_zero():  # the other ranks wrote nothing
        log.info("trained %d steps in %.0fs (%.3f s/step, %.0f tokens/s; the stage %.0f s); final loss %s; model in %s",
                 state.global_step, train_s, stats["s_per_step"], stats["tokens_per_s"], wall, stats["final_loss"],
                 out_dir)
    return stats


def expected_step(keeper, probe: dict | None, precision: str, timer):
    """Seconds a step of n padded tokens should take, as measured before the first step: the time
    budget's plan (a + b x tokens, optimizer included), else the precision probe's passes of a
    typical and the largest batch in the chosen precision (forward and backward only), else the
    step timer's first fit (the run's own first 20 s: nothing was measured before). The slow-run
    watch compares each stretch of steps with it. Returns a function with a `source` attribute."""
    if keeper is not None:
        (a, b), opt = keeper.plan.fit, keeper.plan.optimizer_s
        f = lambda n: a + b * n + opt  # noqa: E731
        f.source = "the time budget's measurement"
        return f
    per, sizes = (probe or {}).get("per_batch_s", {}).get(precision), (probe or {}).get("batch_tokens")
    if per and sizes and len(per) == len(sizes):
        a, b = budget.fit_line(list(zip(sizes, per)))
        f = lambda n: a + b * n  # noqa: E731
        f.source = "the precision probe's passes"
        return f

    def first_fit(n):
        return timer.fit[0] + timer.fit[1] * n if timer.fit else None

    first_fit.source = "the run's first timed steps"
    return first_fit


def main() -> int:
    setup_logging()
    try:
        model_p, cfg, hub = params.load("model", "train", "hub")
        hf.offline_env(hub.online)
        if launch.total_processes(cfg) > 1 and not launch.launched():
            launch.accumulation(cfg, launch.total_processes(cfg))  # a bad global batch fails before launch
            return launch.relaunch(cfg, "stages.train")
        log.info("params: model=%s train=%s", model_p.model_dump(), cfg.model_dump())
        stats = run(model_p, cfg, Path("data/tokenizer"), Path("data/tokenized"), Path("model"),
                    Path("metrics/train_live"), started=STARTED)
    except (params.ParamsError, hf.CheckpointError, ValueError, TrainingStopped) as e:
        log.error("%s", e)
        return 1
    if launch.is_main_process():
        dataio.write_metrics("metrics/train.json", stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
