"""Typed, validated sections of params.yaml.

Each stage reads only its own sections into a frozen pydantic model: an unknown key, a wrong type
or an out-of-range value stops the stage with a message naming `params.yaml: section.key`.
pydantic rather than hand-written checks: it already does types, ranges and "extra=forbid".
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator


class ParamsError(ValueError):
    pass


def AutoOr(minimum: int):  # noqa: N802 (used as a type)
    """An integer >= minimum, or the string 'auto' (resolved from the data by the stage)."""
    def check(v):
        if isinstance(v, int) and v < minimum:
            raise ValueError(f"must be 'auto' or an integer >= {minimum}")
        return v
    return Annotated[Union[int, Literal["auto"]], AfterValidator(check)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    path: str = Field(description="JSONL, JSON, CSV, TSV or Parquet file (optionally .gz) of pairs")
    format: Optional[Literal["jsonl", "json", "csv", "tsv", "parquet", "xlsx"]] = None  # None: by extension
    sheet: Optional[str] = None          # xlsx: the sheet to read; None: the first
    text_column: str = "text"
    summary_column: str = "summary"
    label_column: Optional[str] = None   # e.g. an emotion label; used by stratified subsampling
    split_column: Optional[str] = None   # use the file's own splits instead of a random split
    train_split: str = "train"           # values of split_column for each split
    validation_split: Optional[str] = "validation"  # None: carve validation out of train
    test_split: Optional[str] = "test"  # None: carve test out of train
    # further values of split_column scored like test, each on its own (the demo's `heldout`: causes
    # and feeling wordings absent from training); a fast and a full run differ most there
    extra_test_splits: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _extra_names(self):
        clash = [s for s in self.extra_test_splits if s in ("train", "validation", "test")
                 or s in (self.train_split, self.validation_split, self.test_split)]
        if clash:
            raise ValueError(f"extra_test_splits {clash}: a name of train, validation or test; pick another")
        if self.extra_test_splits and not self.split_column:
            raise ValueError("extra_test_splits needs data.split_column (the column that names each row's split)")
        return self


class SubsampleParams(Section):
    seed: int = 42
    max_samples: Optional[int] = Field(5000, ge=1, description="training pairs kept; null = all")
    validation_fraction: float = Field(0.05, gt=0, lt=0.5)
    test_fraction: float = Field(0.05, gt=0, lt=0.5)
    max_eval_samples: Optional[int] = Field(300, ge=1, description="cap on validation and test each")
    min_source_chars: int = Field(1, ge=1)
    min_summary_chars: int = Field(1, ge=1)
    max_drop_fraction: float = Field(0.5, ge=0, le=1, description="fail when more rows are dropped")
    # inputs whose character 5-gram Jaccard similarity to a kept one reaches this are dropped
    # (emosum/near_dups.py), across splits too; null: exact duplicates only
    near_duplicate_jaccard: Optional[float] = Field(0.6, gt=0, le=1)
    strategy: Literal["random", "stratified", "representative"] = "random"
    # representative: which member of each k-means cluster is kept (emosum/coverage.py)
    representative_pick: Literal["nearest", "random", "kcenter"] = "nearest"
    # what the cut and its coverage figures compare pairs by: input and summary in one bag, or the
    # summary alone (what a pair teaches; emosum/coverage.py)
    representation: Literal["pair", "summary"] = "pair"
    length_buckets: int = Field(4, ge=1, description="input-length strata when there is no label")


class ScratchModel(Section):
    d_model: int = Field(256, ge=8)
    d_ff: int = Field(1024, ge=8)
    d_kv: int = Field(64, ge=4)
    num_heads: int = Field(4, ge=1)
    num_layers: int = Field(4, ge=1)
    num_decoder_layers: int = Field(4, ge=1)
    dropout_rate: float = Field(0.1, ge=0, lt=1)
    # the (tied) embeddings' init std; null: d_model ** -0.5. 0.5 measured better on the open-cause
    # demo at d_model 128 (emosum/hf.py)
    embedding_std: Optional[float] = Field(None, gt=0)


class ModelParams(Section):
    name: str = Field("scratch", description="'scratch', a hub id or a local checkpoint directory")
    source_prefix: str = ""
    # a pointer-generator copy head on the mT5 (emosum/pointer.py); a plain mT5 checkpoint gets a fresh one
    copy_head: bool = False
    copy_heads: int = Field(1, ge=1, description="pointer heads of the copy head (d_model must divide by it)")
    # the copy head's supervised alignment loss in training: its weight (0: off; emosum/pointer.py)
    copy_alignment: float = Field(0.0, ge=0, description="weight of the copy head's alignment loss")
    # the copy head's keys also carry the input position (buckets of a learned embedding; 0: content alone)
    copy_positions: int = Field(0, ge=0, description="input-position buckets of the copy head's keys")
    # the pointer also scores how long a run of the tokens just written the input holds before a position (0: off)
    copy_runs: int = Field(0, ge=0, description="longest matched run the copy head scores (emosum/pointer.matched_runs)")
    # copy_runs also scores whether an earlier input position has as long a run (the leftmost copies first)
    copy_leftmost: bool = Field(False, description="copy_runs: tell the leftmost run from later ones (emosum/pointer.shadowed_runs)")
    scratch: ScratchModel = ScratchModel()

    def copy_options(self) -> dict:
        """The copy head's settings as MT5PointerConfig takes them."""
        return {"copy_heads": self.copy_heads, "copy_positions": self.copy_positions, "copy_runs": self.copy_runs,
                "copy_leftmost": self.copy_leftmost, "copy_alignment": self.copy_alignment}


class HubParams(Section):
    online: bool = Field(False, description="allow downloads from the Hugging Face hub")


class TokenizeParams(Section):
    vocab_size: int = Field(8000, ge=100, description="SentencePiece vocabulary when model.name is scratch")
    max_piece_length: int = Field(1, ge=1, le=16, description="longest SentencePiece piece in characters; "
                                  "1 = one id per character")
    character_coverage: float = Field(1.0, gt=0.9, le=1.0, description="share of characters SentencePiece "
                                      "keeps; the rest become bytes (byte_fallback) or <unk>")
    # characters outside the vocabulary become their UTF-8 bytes (SentencePiece byte fallback)
    # instead of <unk>, so the model can copy a name or a word it never saw
    byte_fallback: bool = True
    max_source_length: AutoOr(8) = 128  # auto: cover source_length_percentile
    # what an input longer than max_source_length keeps: its first tokens (lead), the sentences a
    # scorer fitted on the training split picks (learned), or learned only where that raises the
    # validation coverage over lead by select_min_gain (auto)
    select: Literal["lead", "learned", "auto"] = "auto"
    select_min_gain: float = Field(0.01, ge=0, le=1, description="auto: the least gain in validation "
                                   "coverage (share of reference bigrams kept) for the learned selection")
    # guided inputs (emosum/guide.py): the clauses a scorer fitted on the training split's pairs
    # picks as the ones the summary copies, written before the text (`clauses`), or none
    guide: Literal["none", "clauses"] = "none"
    guide_clauses: int = Field(2, ge=1, description="guide: at most this many clauses per input")
    guide_context: int = Field(0, ge=0, description="guide: clauses either side of each pick that join it")
    guide_min_probability: float = Field(0.5, ge=0, le=1, description="guide: a clause after the most probable "
                                         "one joins the guide at this probability")
    guide_label: Optional[str] = Field(None, min_length=1, description="guide: a fact of the training rows "
                                       "(evaluate.fact_columns) whose value a classifier fitted on the guides "
                                       "predicts and writes after the clauses; rows without it: no hint (logged)")
    guide_label_folds: int = Field(5, ge=0, description="guide_label: the training rows' hints are out of fold "
                                   "(this many folds, >= 2) or, 0, the fitted classifier's own (in sample)")
    source_length_percentile: float = Field(95, gt=0, le=100)
    prune_vocab: bool = Field(True, description="checkpoints: keep only the token ids the data uses")
    min_vocab: int = Field(0, ge=0, description="top the pruned vocabulary up to this size")

    max_target_length: int = Field(128, ge=4)


def _duration(v):
    if v is None:
        return v
    from emosum.budget import seconds

    if not isinstance(v, str):  # 180: seconds? minutes? say which
        raise ValueError(f"{v!r} has no unit: write a number and a unit, e.g. {v}s, {v}min or {v}h")
    seconds(v)  # ValueError with the accepted forms
    return v


class TrainParams(Section):
    # null: epochs / max_steps decide the length; "90s", "45min", "2h": the train stage fits its steps
    # and its learning-rate schedule into that time on this machine (emosum/budget.py)
    time_budget: Annotated[Optional[str], BeforeValidator(_duration)] = None
    epochs: float = Field(1, gt=0)
    max_steps: int = Field(-1, ge=-1, description="-1 = as many as epochs give")
    batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(1e-3, gt=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    # share of a training summary's copied characters swapped, in it and its input alike, for random
    # ones, fresh each epoch (emosum/augment.py); 0: off
    copy_noise: float = Field(0.0, ge=0, le=1)
    # share of training pairs whose labels (the feelings their text shows) are permuted, wordings and
    # the summary's label alike, fresh each epoch (emosum/augment.py LabelSwap); 0: off
    label_swap: float = Field(0.0, ge=0, le=1)
    label_lexicon: str = "data/demo/feelings.json"  # label -> wordings (JSON) that label_swap swaps and feeling_tags tags
    # weight of an encoder head's loss that tags each feeling word of the input as the author's or
    # not (emosum/augment.py FeelingTags; needs model.copy_head); 0: off
    feeling_tags: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    lr_scheduler: Literal["linear", "cosine", "constant_with_warmup", "inverse_sqrt"] = "linear"
    optimizer: Literal["adamw_torch", "adamw_torch_fused", "adafactor"] = "adamw_torch_fused"
    precision: Literal["auto", "bf16", "fp32", "fp16"] = "auto"
    allow_fp16: bool = False
    group_by_length: bool = True
    # auto: 16 when the run trains in bf16 on a CPU (oneDNN keeps caches per batch shape there: the
    # default run grew to 2.6 GB over its 344 shapes; padded, it stays flat), else none; or a number
    pad_to_multiple_of: Optional[AutoOr(1)] = "auto"
    torch_compile: bool = False
    # torch.compile's mode when torch_compile is on; reduce-overhead replays CUDA graphs (one per
    # padded shape: pair it with pad_to_multiple_of so the shapes are few)
    torch_compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    seed: int = 42
    save_steps: int = Field(200, ge=1)
    logging_steps: int = Field(25, ge=1)
    eval_steps: int | None = Field(None, ge=1)
    eval_batch_size: int = Field(16, ge=1)
    # divergence: stop when the logged loss is NaN/inf, or above factor x the first logged loss for
    # `patience` logs in a row
    divergence_factor: float = Field(3.0, gt=1)
    divergence_patience: int = Field(3, ge=1)
    # data-parallel training (see emosum/launch.py); global_batch_size null = batch_size x accumulation
    global_batch_size: Optional[int] = Field(None, ge=1)
    num_processes: int = Field(1, ge=1, description="processes per machine (GPUs, or CPU workers)")
    num_machines: int = Field(1, ge=1)
    machine_rank: int = Field(0, ge=0)
    main_process_ip: Optional[str] = None
    main_process_port: int = Field(29500, ge=1, le=65535)
    accelerate_config: Optional[str] = None  # an `accelerate config` file instead of the keys above


class EvaluateParams(Section):
    num_beams: int = Field(4, ge=1)
    max_new_tokens: AutoOr(1) = "auto"  # auto: the model's longest training summary
    batch_size: int = Field(32, ge=1)
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = Field(0, ge=0)
    # log-probability bonus for the token continuing a span of the input (emosum/generation.py)
    copy_bias: float = Field(0.0, ge=0)
    encoder_repetition_penalty: float = Field(1.0, gt=0)  # transformers' own: >1 favours every input token
    table_examples: int = Field(10, ge=1, description="rows of metrics/predictions.md")
    # data columns whose value the summary must state (fact recall); the subsample stage carries
    # them into the splits, so a missing column fails there, before any training
    fact_columns: list[str] = Field(default_factory=list)
    max_label_values: int = Field(100, ge=1, description="a fact column with at most this many distinct "
                                  "values is a label: naming another value too counts as wrong")


class CleanupParams(Section):
    paths: list[str] = Field(default_factory=lambda: [".scratch"])


SECTIONS: dict[str, type[Section]] = {
    "data": DataParams, "subsample": SubsampleParams, "model": ModelParams, "hub": HubParams,
    "tokenize": TokenizeParams, "train": TrainParams, "evaluate": EvaluateParams,
    "cleanup": CleanupParams,
}


def parse_section(name: str, raw: Union[dict, None], source: str = "params.yaml") -> Section:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: section '{name}' must be a mapping, got {type(raw).__name__}")
    try:
        return SECTIONS[name].model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = ".".join([name, *map(str, err["loc"])])
            what = "unknown key (check the spelling; see params.yaml for the keys)" \
                if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{source}: {key}: {what} (got {err.get('input')!r})")
        raise ParamsError("\n".join(lines)) from None


def load(*names: str, path: Union[str, Path] = "params.yaml") -> tuple:
    """Read the named sections of a params file; one validated object per name.

    Every other section is validated too, so whichever stage runs first refuses a bad value
    anywhere in the file (`evaluate.num_beams: four` used to surface after training). DVC still
    reruns a stage only for the keys dvc.yaml lists: validating a key is not depending on it.
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; run from the repository root") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from None
    return validate(doc, *names, source=str(path))


def validate(doc, *names: str, source: str = "params.yaml") -> tuple:
    """Validate every section of a parsed params document; one object per name asked for."""
    if not isinstance(doc, dict):
        raise ParamsError(f"{source}: must be a mapping of sections ({', '.join(SECTIONS)})")
    missing = [n for n in names if n not in doc and n != "hub"]
    if missing:
        raise ParamsError(f"{source}: missing section(s) {', '.join(missing)}")
    errors = [f"{source}: {k}: unknown section (check the spelling; sections: {', '.join(SECTIONS)})"
              for k in doc if k not in SECTIONS]
    parsed = {}
    for name in SECTIONS:
        if name in doc or name in names:
            try:
                parsed[name] = parse_section(name, doc.get(name), source)
            except ParamsError as e:
                errors.append(str(e))
    if errors:
        raise ParamsError("\n".join(errors))
    return tuple(parsed[n] for n in names)


def override(doc: dict, assignment: str) -> dict:
    """A copy of `doc` with one `section.key=value` applied the way `dvc exp run -S` does (the value
    read as YAML: 2 is a number, null is None). The result is validated by `validate`, so a
    misspelt key is refused with the message a stage gives for it in params.yaml."""
    import copy

    if "=" not in assignment:
        raise ParamsError(f"-S {assignment}: expected section.key=value (as `dvc exp run -S` takes it)")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ParamsError(f"-S {assignment}: the value is not valid YAML ({e})") from None
    out = copy.deepcopy(doc)
    node = out
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {} if node.get(part) is None else node[part]
            if not isinstance(node[part], dict):
                raise ParamsError(f"-S {assignment}: '{part}' is not a section or a mapping")
        node = node[part]
    node[parts[-1]] = value
    return out
