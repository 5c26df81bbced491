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


def test_a_bad_value_in_any_section_fails_the_first_stage(tmp_path, monkeypatch):
    """`evaluate.num_beams: four` used to surface after training; now the subsample stage, the
    first to run, refuses it in seconds, naming the key, and writes nothing."""
    import yaml

    from conftest import tiny_params, write_demo_rows
    from stages import subsample

    monkeypatch.chdir(tmp_path)
    write_demo_rows(tmp_path / "demo.jsonl", n=30)
    doc = tiny_params(data={"path": "demo.jsonl"}, evaluate={"num_beams": "four"}, train={"epochs": -1})
    doc["trian"] = {"epochs": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(params.ParamsError) as e:
        params.load("data", "subsample")
    msg = str(e.value)
    assert "evaluate.num_beams" in msg and "train.epochs" in msg and "trian: unknown section" in msg
    assert subsample.main() == 1
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()
    # the stage's own sections still come back when everything is valid
    doc = tiny_params(data={"path": "demo.jsonl"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    data, sub = params.load("data", "subsample")
    assert data.path == "demo.jsonl" and sub.max_samples == 40


def test_every_stage_depends_on_each_module_it_imports():
    """A change to a module a stage imports (directly or through another module) must rerun the
    stage: dvc.yaml lists each of them in the stage's deps, or `dvc repro` keeps a stale result."""
    import ast
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]

    def imports(path: Path, everywhere: bool) -> set[str]:
        """The emosum modules `path` imports: in its body (and, when `everywhere`, in its functions too:
        a stage's own lazy imports run; a library module's lazy ones belong to functions a stage may
        never call, e.g. params' duration check importing the budget)."""
        tree = ast.parse(path.read_text(encoding="utf-8"))
        out = set()
        for node in ast.walk(tree) if everywhere else tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "emosum":
                mods = [node.module] if node.module != "emosum" else [f"emosum.{a.name}" for a in node.names]
                out.update(mods)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names if a.name.startswith("emosum."))
        files = set()
        for m in out:
            p = root / (m.replace(".", "/") + ".py")
            files.add(p if p.exists() else root / m.replace(".", "/") / "__init__.py")
        return {f for f in files if f.exists()}

    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for name, stage in stages.items():
        script = root / "stages" / f"{stage['cmd'].split('stages.')[1].split()[0]}.py"
        seen, todo = set(), [script]
        while todo:
            f = todo.pop()
            for g in imports(f, f == script) - seen:
                seen.add(g)
                todo.append(g)
        needed = {str(f.relative_to(root)) for f in seen if f.name != "__init__.py"}
        missing = needed - set(stage["deps"])
        assert not missing, f"dvc.yaml: stage '{name}' imports {sorted(missing)} but does not list them in its deps"
