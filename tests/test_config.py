"""The config schema: defaults filled in, bad keys stop the run with a message naming them."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from explainbench.config import ConfigError, load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def default_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_both_configs_validate_and_fill_defaults():
    cfg = load_config(ROOT / "config" / "config.yaml")
    assert cfg["models"]["smollm2"]["tensor_parallel_size"] == 1          # model default
    assert cfg["datasets"]["esnli"]["split"]["seed"] == 0
    assert cfg["explain"]["show_label"] is True                              # section default
    assert cfg["finetune"]["template"].startswith("{premise}")
    paper = load_config(ROOT / "config" / "paper.yaml")
    assert paper["models"]["llama-3-70b"]["tensor_parallel_size"] == 4
    assert set(paper["finetune"]["encoders"]) == {"bert-base", "deberta-v3-base", "roberta-base", "modernbert-base"}
    # Study 2: many sentence classification tasks of 2-4 classes by hub id, quantised as the paper ran it
    tasks = {name: paper["datasets"][name] for name in paper["plr"]["datasets"]}
    assert len(tasks) >= 5 and "sst2" in tasks and "financial_phrasebank" in tasks
    assert all(t["format"] == "hub" and t["task"] == "classification" and 2 <= len(t["labels"]) <= 4
               for t in tasks.values())
    assert paper["datasets"]["financial_phrasebank"]["hub_config"] == "sentences_allagree"
    quants = {paper["models"][m]["quantization"] for m in paper["plr"]["models"]}
    assert {"q8_0", "q4_0"} <= quants and not any("bitsandbytes" in str(q) for q in quants)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["models"]["smollm2"].update(dtype="float33"),
     r"config key models.smollm2.dtype: 'float33' is not allowed; allowed values: \['auto', 'float32'"),
    (lambda c: c["models"]["smollm2"].update(max_model_len="long"),
     r"config key models.smollm2.max_model_len: 'long' has the wrong type; expected integer"),
    (lambda c: c["explain"].update(shotz=[1]),
     r"config key explain: unknown key\(s\) \['shotz'\]; allowed keys: \[.*'shots'"),
    (lambda c: c.update(plr_typo={}), r"config key <top level>: unknown key\(s\) \['plr_typo'\]"),
    (lambda c: c["explain"].update(explainers=["gpt5"]),
     r"config key explain.explainers: unknown model 'gpt5'; defined: \['minilm', 'smollm2'\]"),
    (lambda c: c["finetune"].update(encoders=["smollm2"]),
     r"config key finetune.encoders: model 'smollm2' is kind 'causal', needs 'encoder'"),
    (lambda c: c["datasets"]["esnli"].update(format="xlsx"), r"config key datasets.esnli.format: 'xlsx' is not allowed"),
    (lambda c: c["datasets"]["esnli"]["split"].update(dev=0.5, test=0.6), r"datasets.esnli.split: dev \+ test must be below 1"),
    # bitsandbytes is installed by no env: refused with every backend, naming the key and the llama.cpp way
    (lambda c: c["models"]["smollm2"].update(backend="transformers", quantization="bitsandbytes-8bit"),
     r"config key models.smollm2.quantization: 'bitsandbytes-8bit' is not available with backend transformers "
     r"\(bitsandbytes, the quantiser it would need, is installed by no env of this project\); use backend llamacpp"),
    (lambda c: c["models"]["smollm2"].update(quantization="bitsandbytes"),
     r"config key models.smollm2.quantization: 'bitsandbytes' is not available with backend vllm"),
])
def test_bad_keys_are_named(default_config, edit, message):
    cfg = copy.deepcopy(default_config)
    edit(cfg)
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_load_config_names_the_file(tmp_path, default_config):
    default_config["models"]["minilm"]["batch_size"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(default_config))
    line = path.read_text().splitlines().index("    batch_size: 0") + 1
    with pytest.raises(ConfigError, match=rf"bad.yaml: invalid config:\n  config key models.minilm.batch_size "
                                          rf"\(line {line}\): 0 is less than the minimum of 1"):
        load_config(path)


def _schema_keys(node: dict, defs: dict, path: tuple[str, ...] = ()):
    """Every key path the schema allows: ('quality', 'bertscore', 'model'), ('models', '*', 'dtype'), ..."""
    if "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    for key, sub in node.get("properties", {}).items():
        yield path + (key,)
        yield from _schema_keys(sub, defs, path + (key,))
    if isinstance(node.get("additionalProperties"), dict):
        yield from _schema_keys(node["additionalProperties"], defs, path + ("*",))


def test_config_readme_documents_every_schema_key():
    """config/README.md has a `## <key>` section per top-level key, and each nested key is named
    in its section, in backticks, by its name or a dotted path ending in it (`plr.draws`, `draws`);
    a key that groups others may be named through them (`split.seed` names `split`)."""
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    readme = (ROOT / "config" / "README.md").read_text()
    sections: dict[str, str] = {}
    for block in readme.split("\n## ")[1:]:
        title, _, body = block.partition("\n")
        top = title.split(":")[0].strip()
        sections[top] = sections.get(top, "") + body
    missing = []
    for path in _schema_keys(schema, schema.get("$defs", {})):
        if path[0] not in sections:
            missing.append(f"{path[0]} (no '## {path[0]}' section)")
            continue
        keys = [k for k in path if k != "*"]
        names = [".".join(keys[i:]) for i in range(len(keys))]
        text = sections[path[0]]
        if len(path) > 1 and not any(f"`{n}`" in text or f"`{n}." in text for n in names):
            missing.append(".".join(path))
    assert not missing, f"config/README.md does not document: {missing}"
