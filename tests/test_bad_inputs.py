"""Every bad input gets a clear error before any engine starts.

One table of malformed config files, data files and stage inputs. Each case runs the code a
user's run would (``load_config`` on the file, ``prepare_dataset`` as rule prepare_data does, a
stage's ``run(job)``), and asserts that the message names where the fault is (the file or config
key, the row or line, the field) and that no engine started (:func:`explainbench.engines.engines_started`):
the checks come before any model is loaded. Whole-file faults (a folder, a file of blank lines)
have no row to name; config keys set in a file are named with the file's line.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from explainbench.config import ConfigError, dataset_entry, load_config
from explainbench.engines import engines_started
from explainbench.errors import ExplainBenchError
from explainbench.files import write_examples
from explainbench.splits import prepare_dataset
from explainbench.workflow import Job, rule_settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
NLI = ["entailment", "neutral", "contradiction"]
SECRET = "sk-proj-4f9c2b7e1d3a5c8e0b6d"


@dataclass
class Case:
    name: str
    run: Callable[[Path], object]     # given a fresh folder, does what a run would and must raise
    expect: list[str]                 # regexes the message must hold: where (file / key), row or line, field
    absent: list[str] = field(default_factory=list)  # what the message must never show


# ----------------------------------------------------------------------------- config files
def config_text(text: str) -> Callable[[Path], object]:
    def run(tmp: Path):
        path = tmp / "bad.yaml"
        path.write_text(text)
        return load_config(path)
    return run


def config_edit(edit: Callable[[dict], None]) -> Callable[[Path], object]:
    def run(tmp: Path):
        config = copy.deepcopy(DEFAULT)
        edit(config)
        path = tmp / "bad.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return load_config(path)
    return run


def _set(path: str, value) -> Callable[[dict], None]:
    def edit(config: dict):
        *parents, last = path.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return edit


def _openai(key_env) -> Callable[[dict], None]:
    def edit(config: dict):
        config["models"]["gpt"] = {"path": "gpt-4o-mini", "backend": "openai", "api_base": "https://api.openai.com/v1",
                                   "api_key_env": key_env}
    return edit


DEFAULT_TEXT = (ROOT / "config" / "config.yaml").read_text()
LINE = r"line \d+"

CONFIG_CASES = [
    Case("yaml syntax error", config_text(DEFAULT_TEXT.replace("datasets:\n", "datasets: {\n", 1)),
         [r"bad\.yaml, line \d+, column \d+: not valid YAML"]),
    Case("tab indentation", config_text(DEFAULT_TEXT.replace("    path: resources/models/all-MiniLM", "\tpath: x", 1)),
         [r"bad\.yaml, line \d+, column 1: not valid YAML: found character '\\t'"]),
    Case("model defined twice", config_text(DEFAULT_TEXT.replace(
        "  minilm:\n", "  smollm2:\n    path: resources/models/SmolLM2-135M-Instruct\n  minilm:\n", 1)),
         [r"bad\.yaml, line \d+: key 'smollm2' is defined twice \(first at line \d+\)"]),
    Case("section defined twice", config_text(DEFAULT_TEXT + "\nexplain:\n  shots: [0]\n"),
         [r"bad\.yaml, line \d+: key 'explain' is defined twice \(first at line \d+\)"]),
    Case("top level is a list", config_text("- datasets\n- models\n"),
         [r"bad\.yaml: expected a mapping of config keys"]),
    Case("encoder as G-Eval judge", config_edit(_set("quality.judge", "minilm")),
         [r"bad\.yaml", r"config key quality\.judge \(" + LINE + r"\): model 'minilm' is kind 'encoder'",
          "needs a causal LM"]),
    Case("API key in api_key_env", config_edit(_openai(SECRET)),
         [r"bad\.yaml", r"config key models\.gpt\.api_key_env \(" + LINE + r"\): .*looks like an API key "
                         r"\(the value is not shown\)"], absent=[SECRET, SECRET[:10]]),
    Case("NAME=key in api_key_env", config_edit(_openai(f"OPENAI_API_KEY={SECRET}")),
         [r"config key models\.gpt\.api_key_env \(" + LINE + r"\)", "not shown"], absent=[SECRET]),
    Case("api_key_env of the wrong type", config_edit(_openai(12345678901234)),
         [r"config key models\.gpt\.api_key_env \(" + LINE + r"\): must be the name of an environment variable"],
         absent=["12345678901234"]),
    Case("local model path with a typo (org/name shape)",
         config_edit(_set("models.smollm2.path", "models/SmolLM2-135M-Instruct")),
         [r"config key models\.smollm2\.path \(" + LINE + r"\): no folder 'models/SmolLM2-135M-Instruct'",
          r"Did you mean 'resources/models/SmolLM2-135M-Instruct'"]),
    Case("local model path with a typo in the name",
         config_edit(_set("models.smollm2.path", "resources/models/SmolLM2-135M-Instrct")),
         [r"config key models\.smollm2\.path \(" + LINE + r"\)", r"Did you mean 'resources/models/SmolLM2-135M-Instruct'"]),
    Case("relative model folder that is not there", config_edit(_set("models.minilm.path", "./my-encoder")),
         [r"config key models\.minilm\.path \(" + LINE + r"\): no folder './my-encoder'"]),
    Case("absolute model folder that is not there", config_edit(_set("models.minilm.path", "/data/models/enc")),
         [r"config key models\.minilm\.path \(" + LINE + r"\): no folder '/data/models/enc'"]),
    Case("max_model_len below max_new_tokens",
         config_edit(_set("models.smollm2.max_model_len", DEFAULT["explain"]["max_new_tokens"])),
         [r"config key models\.smollm2\.max_model_len \(" + LINE + r"\): \d+ tokens leave no room",
          "explain.max_new_tokens"]),
    Case("max_model_len below the schema's minimum", config_edit(_set("models.smollm2.max_model_len", 8)),
         [r"config key models\.smollm2\.max_model_len \(" + LINE + r"\): 8 is less than the minimum of 16"]),
    Case("unknown explainer", config_edit(_set("explain.explainers", ["gpt5"])),
         [r"config key explain\.explainers \(" + LINE + r"\): unknown model 'gpt5'"]),
    Case("encoder as explainer", config_edit(_set("explain.explainers", ["minilm"])),
         [r"config key explain\.explainers \(" + LINE + r"\): model 'minilm' is kind 'encoder', needs 'causal'"]),
    Case("unknown dataset in a stage", config_edit(_set("zeroshot.datasets", ["snli"])),
         [r"config key zeroshot\.datasets \(" + LINE + r"\): unknown dataset 'snli'"]),
    Case("dtype typo", config_edit(_set("models.minilm.dtype", "fp32")),
         [r"config key models\.minilm\.dtype \(" + LINE + r"\): 'fp32' is not allowed"]),
    Case("dev + test not below 1", config_edit(_set("datasets.esnli.split", {"dev": 0.5, "test": 0.5})),
         [r"config key datasets\.esnli\.split \(" + LINE + r"\): dev \+ test must be below 1"]),
    Case("verbalizers of an unknown dataset", config_edit(_set("zeroshot.verbalizers", {"snli": {"neutral": "maybe"}})),
         [r"config key zeroshot\.verbalizers\.snli \(" + LINE + r"\): unknown dataset 'snli'"]),
    Case("verbalizer of an unknown label", config_edit(_set("zeroshot.verbalizers", {"esnli": {"neutrall": "maybe"}})),
         [r"config key zeroshot\.verbalizers\.esnli \(" + LINE + r"\): unknown label\(s\) \['neutrall'\]"]),
    Case("misspelt key", config_edit(_set("explain.shotz", [1])),
         [r"config key explain \(" + LINE + r"\): unknown key\(s\) \['shotz'\]"]),
    Case("one label", config_edit(_set("datasets.esnli.labels", ["entailment"])),
         [r"config key datasets\.esnli\.labels \(" + LINE + r"\): .*too short"]),
    Case("a label twice", config_edit(_set("datasets.esnli.labels", ["entailment", "entailment"])),
         [r"config key datasets\.esnli\.labels \(" + LINE + r"\): .*non-unique"]),
    Case("openai backend without api_base", config_edit(lambda c: c["models"].update(
        gpt={"path": "gpt-4o-mini", "backend": "openai"})),
         [r"config key models\.gpt\.api_base \(" + LINE + r"\): required when backend is openai"]),
    Case("encoder with the vllm backend", config_edit(_set("models.minilm.backend", "vllm")),
         [r"config key models\.minilm\.backend \(" + LINE + r"\): an encoder runs with transformers"]),
    Case("zero examples per class", config_edit(_set("plr.n_per_class", [0, 4])),
         [r"config key plr\.n_per_class\.0 \(" + LINE + r"\): 0 is less than the minimum of 1"]),
    Case("unknown judge", config_edit(_set("quality.judge", "gpt5")),
         [r"config key quality\.judge \(" + LINE + r"\): unknown model 'gpt5'"]),
]


# ----------------------------------------------------------------------------- data files
def _rows(n_per_class: int = 4, labels=NLI) -> list[dict]:
    return [{"id": f"r{label[:3]}{i}", "premise": f"A person number {i} is walking to the {label} shop .",
             "hypothesis": "A person is walking .", "label": label, "explanations": ["walking is walking ."]}
            for label in labels for i in range(n_per_class)]


def data_file(content: Callable[[Path], Path], **entry) -> Callable[[Path], object]:
    """A dataset entry (jsonl, the NLI labels unless ``entry`` says otherwise) over the file
    ``content`` writes; run as rule prepare_data does."""
    def run(tmp: Path):
        path = content(tmp)
        spec = dataset_entry(**{"format": "jsonl", "path": str(path), "labels": NLI, **entry})
        return prepare_dataset(spec, "mine")
    return run


def lines(*rows, name="data.jsonl") -> Callable[[Path], Path]:
    """A file of these lines: dicts as JSON, bytes and strings as they are."""
    def write(tmp: Path) -> Path:
        out = b""
        for row in rows:
            out += row if isinstance(row, bytes) else (row if isinstance(row, str) else json.dumps(row)).encode()
            out += b"\n"
        (tmp / name).write_bytes(out)
        return tmp / name
    return write


def jsonl_with(row_3: dict | str | bytes, n_per_class: int = 4) -> Callable[[Path], Path]:
    """Good rows with the third one replaced."""
    rows: list = _rows(n_per_class)
    rows[2] = row_3
    return lines(*rows)


def _good(i=2, **change) -> dict:
    return {**_rows()[i], **change}


def csv_file(text: bytes, name="data.csv") -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        (tmp / name).write_bytes(text)
        return tmp / name
    return write


GOOD_CSV = b"id,premise,hypothesis,label\n" + b"".join(
    f"c{i},A man number {i} sings .,A man sings .,{NLI[i % 3]}\n".encode() for i in range(12))

DATA_CASES = [
    Case("a byte that is not UTF-8 (JSONL)",
         data_file(jsonl_with(json.dumps(_good()).replace("shop", "caf\udce9", 1).encode("utf-8", "surrogateescape"))),
         [r"data\.jsonl, row 3, column \d+: byte 0xe9 is not UTF-8"]),
    Case("a byte that is not UTF-8 (CSV)",
         data_file(csv_file(GOOD_CSV.replace(b"number 4 sings", b"number 4 sings \xff")), format="csv"),
         [r"data\.csv, row 6, column \d+: byte 0xff is not UTF-8"], ),
    Case("a folder as the data file", data_file(lambda tmp: tmp),
         [re.escape("is a folder, not a data file")]),
    Case("a file of blank lines (JSONL)", data_file(lines("", "   ", "")), [r"data\.jsonl: no rows"]),
    Case("a file of blank lines (CSV)", data_file(csv_file(b"\n\n\n"), format="csv"), [r"data\.csv: no rows"]),
    Case("an empty file", data_file(lines(name="empty.jsonl") if False else csv_file(b"", "empty.jsonl")),
         [r"empty\.jsonl: file is empty: no rows"]),
    Case("a missing file", data_file(lambda tmp: tmp / "nowhere.jsonl"), [r"nowhere\.jsonl: file not found"]),
    Case("a JSON object as premise", data_file(jsonl_with(_good(premise={"text": "A man sings ."}))),
         [r"data\.jsonl, row 3, field 'premise': expected text, got a JSON object"]),
    Case("a JSON list as hypothesis", data_file(jsonl_with(_good(hypothesis=["A man", "sings"]))),
         [r"data\.jsonl, row 3, field 'hypothesis': expected text, got a JSON list"]),
    Case("a JSON object as label", data_file(jsonl_with(_good(label={"name": "neutral"}))),
         [r"data\.jsonl, row 3, field 'label': expected a label name or index"]),
    Case("a JSON object as an explanation", data_file(jsonl_with(_good(explanations=[{"text": "because"}]))),
         [r"data\.jsonl, row 3, field 'explanations': expected text, got a JSON object"]),
    Case("a line that is not JSON", data_file(jsonl_with('{"id": "x", "premise": "A man"')),
         [r"data\.jsonl, row 3: not valid JSON"]),
    Case("a line that is a JSON list", data_file(jsonl_with('["x", "A man", "sings", "neutral"]')),
         [r"data\.jsonl, row 3: expected a JSON object, got list"]),
    Case("an unknown label", data_file(jsonl_with(_good(label="neutrall"))),
         [r"data\.jsonl, row 3, field 'label': unknown label 'neutrall'"]),
    Case("a missing label", data_file(jsonl_with(_good(label=None))),
         [r"data\.jsonl, row 3, field 'label': label is missing"]),
    Case("an empty premise", data_file(jsonl_with(_good(premise="   "))),
         [r"data\.jsonl, row 3, field 'premise': empty premise"]),
    Case("a duplicate id", data_file(jsonl_with(_good(i=2, id=_rows()[0]["id"]))),
         [r"data\.jsonl, row 3, field 'id': duplicate id 'rent0' \(first at line 1\)"]),
    Case("a column that is not there", data_file(lines(*[{k: v for k, v in r.items() if k != "premise"} for r in _rows()])),
         [r"data\.jsonl: column 'premise' \(field 'premise'\) not found"]),
    Case("a column mapping to a column that is not there", data_file(csv_file(GOOD_CSV), format="csv",
                                                                     columns={"premise": "sentence1"}),
         [r"data\.csv: column 'sentence1' \(field 'premise'\) not found"]),
    Case("a class too small to stratify", data_file(lines(*(_rows(4, NLI[:2]) + _rows(2, NLI[2:])))),
         [r"data\.jsonl, field 'label': class 'contradiction' has 2 row\(s\) \(line 9, line 10\)",
          r"needs one of each class in train, dev and test \(at least 3 rows per class\)"]),
    Case("a one-row dataset", data_file(lines(_rows(1)[0])),
         [r"data\.jsonl, field 'label': only 1 row\(s\) \(line 1\)", "needs at least 3 rows per class"]),
    Case("a configured label that never occurs", data_file(lines(*_rows(4, NLI[:2]))),
         [r"data\.jsonl, field 'label': label\(s\) \['contradiction'\] of datasets\.mine\.labels never occur"]),
    Case("a class too small for the split shares", data_file(lines(*_rows(3)), split={"dev": 0.3, "test": 0.6}),
         [r"data\.jsonl, field 'label': class 'contradiction' has 3 row\(s\) \(line 7, line 8, line 9\)",
          r"dev 0\.3 and test 0\.6 \(datasets\.mine\.split\) that leaves it \{'train': 0, 'dev': 1, 'test': 2\}"]),
]


# ----------------------------------------------------------------------------- stages, before their engines
def _job(tmp: Path, rule: str, config: dict, wildcards: dict, outputs: list[str]) -> Job:
    """A job of ``rule`` over an examples file of the good rows, placed in fold 0 (3 test, 3 dev,
    6 train), and an embeddings path for plr."""
    examples = [dict(r, test_fold=0 if i % 4 == 0 else None, dev_folds=[0] if i % 4 == 1 else [], demonstration=None)
                for i, r in enumerate(_rows(4))]
    write_examples(examples, tmp / "examples.jsonl")
    inputs = {"examples": str(tmp / "examples.jsonl"), "explanations": []}
    inputs["embeddings"] = str(tmp / "embeddings.npz")  # never read: the checks come first
    return Job(input=inputs, output={o: str(tmp / "out" / o) for o in outputs}, config=config, wildcards=wildcards,
               settings=rule_settings(config, rule), rule=rule)


def _config(**changes) -> dict:
    from explainbench.config import validate_config

    config = copy.deepcopy(DEFAULT)
    config["datasets"]["mine"] = {"format": "jsonl", "path": "-", "labels": NLI}
    config["models"]["smollm2"].update(backend="transformers", serve=False, **changes.pop("model", {}))
    for key, value in changes.items():
        _set(key, value)(config)
    return validate_config(config)


def stage(rule: str, module: str, outputs: list[str], wildcards: dict, **changes) -> Callable[[Path], object]:
    def run(tmp: Path):
        import importlib

        job = _job(tmp, rule, _config(**changes), {"dataset": "mine", "model": "smollm2", **wildcards}, outputs)
        return importlib.import_module(f"explainbench.{module}").run(job)
    return run


STAGE_CASES = [
    Case("explain: prompts longer than max_model_len",
         stage("explain", "explanations.generate", ["explanations"], {"shots": "0", "seed": "0"},
               model={"max_model_len": 64}, **{"explain.max_new_tokens": 16}),
         [r"examples\.jsonl, id 'r\w+': its prompt is \d+ tokens, and with 16 more .* needs \d+, but "
          r"models\.smollm2\.max_model_len is 64"]),
    Case("zeroshot: prompts longer than max_model_len",
         stage("zeroshot", "classify.zeroshot", ["predictions", "metrics"], {"condition": "none", "fold": "0"},
               model={"max_model_len": 40}, **{"explain.max_new_tokens": 16}),
         [r"classify\.yaml, id 'r\w+': its prompt is \d+ tokens", r"models\.smollm2\.max_model_len is 40"]),
    Case("embed: plr.explain_n_per_class larger than a class",
         stage("embed", "plr.embed", ["embeddings"], {}, **{"plr.explain_n_per_class": 5}),
         [r"config key plr\.explain_n_per_class: 5 example\(s\) per class, but .*examples\.jsonl \(the train split\), field 'label': "
          r"class '\w+' has 2 training example\(s\)"]),
    Case("embed: every plr.n_per_class larger than a class",
         stage("embed", "plr.embed", ["embeddings"], {}, **{"plr.n_per_class": [4, 8]}),
         [r"config key plr\.n_per_class: 4 example\(s\) per class, but .*examples\.jsonl \(the train split\), field 'label'"]),
    Case("plr_explain: plr.explain_n_per_class larger than a class",
         stage("plr_explain", "plr.occlusion", ["phrases", "stability"], {}, **{"plr.explain_n_per_class": 3}),
         [r"config key plr\.explain_n_per_class: 3 example\(s\) per class, but .*examples\.jsonl \(the train split\), field 'label'"]),
]

CASES = CONFIG_CASES + DATA_CASES + STAGE_CASES


def test_the_table_is_large_enough():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_named_before_any_engine_starts(case, tmp_path, smollm2_path):
    before = engines_started()
    with pytest.raises(ExplainBenchError) as err:
        case.run(tmp_path)
    message = str(err.value)
    for pattern in case.expect:
        assert re.search(pattern, message), f"{case.name}: {pattern!r} not in:\n{message}"
    for secret in case.absent:
        assert secret not in message, f"{case.name}: the message shows {secret!r}"
    assert engines_started() == before, f"{case.name}: an engine started: {engines_started()[len(before):]}"
    if isinstance(err.value, ConfigError):
        assert "Traceback" not in message


# ----------------------------------------------------------------------------- through Snakemake
SNAKEMAKE_CASES = {
    "a planted API key": (lambda text: text + "  gpt:\n    path: gpt-4o-mini\n    backend: openai\n"
                          "    api_base: https://api.openai.com/v1\n    api_key_env: " + SECRET + "\n",
                          r"config key models\.gpt\.api_key_env \(line \d+\): .*the value is not shown"),
    "a model defined twice": (lambda text: text.replace("  minilm:\n", "  smollm2:\n    path: x\n  minilm:\n", 1),
                              r"key\.yaml, line \d+: key 'smollm2' is defined twice \(first at line \d+\)"),
    "a local path typo": (lambda text: text.replace("path: resources/models/SmolLM2", "path: models/SmolLM2", 1),
                          r"key\.yaml: invalid config:\n  config key models\.smollm2\.path \(line \d+\): no folder "
                          r"'models/SmolLM2-135M-Instruct'"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(SNAKEMAKE_CASES))
def test_snakemake_stops_before_any_job_and_never_shows_a_key(case, tmp_path):
    """The Snakefile reads the config file strictly and checks it before building the DAG: the
    message names the file, line and key, nothing runs, and a planted key is written nowhere."""
    from support.ops import copy_workflow, run_snakemake

    root = copy_workflow(tmp_path / "repo")
    models = DEFAULT_TEXT.index("explain:")  # the models section ends where explain begins
    edit, expected = SNAKEMAKE_CASES[case]
    (root / "config" / "key.yaml").write_text(edit(DEFAULT_TEXT[:models]) + DEFAULT_TEXT[models:])
    proc = run_snakemake(root, ["-n", "--cores", "1", "--configfile", "config/key.yaml"], timeout=300)
    assert proc.returncode != 0
    assert re.search(expected, proc.stdout), proc.stdout[-3000:]
    assert "Building DAG of jobs" not in proc.stdout
    assert SECRET not in proc.stdout
    written = [p for p in root.rglob("*") if p.is_file() and p.name != "key.yaml"
               and SECRET.encode() in p.read_bytes()]
    assert not written, written
