import pytest

from emosum import params


def test_defaults_in_params_yaml_are_valid():
    from conftest import ROOT

    for section in params.SECTIONS:
        params.load(section, path=ROOT / "params.yaml")


@pytest.mark.parametrize("section, raw, key", [
    ("train", {"epoch": 2}, "train.epoch: unknown key"),
    ("train", {"batch_size": "four"}, "train.batch_size"),
    ("train", {"batch_size": 0}, "train.batch_size"),
    ("train", {"optimizer": "sgd"}, "train.optimizer"),
    ("subsample", {"test_fraction": 0.9}, "subsample.test_fraction"),
    ("model", {"scratch": {"d_modle": 64}}, "model.scratch.d_modle: unknown key"),
])
def test_bad_values_name_the_key(section, raw, key):
    with pytest.raises(params.ParamsError) as e:
        params.parse_section(section, raw)
    assert key in str(e.value) and "params.yaml" in str(e.value)


def test_sections_are_frozen():
    cfg = params.parse_section("train", {"epochs": 2})
    assert cfg.epochs == 2
    with pytest.raises(Exception):
        cfg.epochs = 3


def test_missing_section_and_bad_yaml(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train: {epochs: 1}\n")
    with pytest.raises(params.ParamsError, match="missing section.*evaluate"):
        params.load("evaluate", path=p)
    p.write_text("train: [1, 2\n")
    with pytest.raises(params.ParamsError, match="not valid YAML"):
        params.load("train", path=p)


def test_params_yaml_names_every_key():
    # `dvc exp run -S key=value` can only override a key that params.yaml already has
    import yaml
    from conftest import ROOT

    doc = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))

    def keys(model, raw, prefix):
        for name, field in model.model_fields.items():
            assert name in raw, f"params.yaml lacks {prefix}{name}"
            sub = field.annotation
            if isinstance(sub, type) and issubclass(sub, params.Section):
                keys(sub, raw[name], f"{prefix}{name}.")

    for section, model in params.SECTIONS.items():
        keys(model, doc[section], f"{section}.")
