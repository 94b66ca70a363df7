"""Load the workflow config, fill in schema defaults, and fail early with clear messages."""
from __future__ import annotations

import copy
import fnmatch
import functools
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import jsonschema
import yaml

from .errors import ExplainBenchError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ExplainBenchError):
    """The config breaks the schema or refers to something it does not define."""


def _with_defaults(validator_class):
    """A validator that writes each ``default`` into the instance as it validates."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


# ----------------------------------------------------------------------------- reading YAML
class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key defined twice in one mapping is an error (PyYAML
    keeps the last silently: a model defined twice would run with whichever came last)."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError(f"{key_node.start_mark.name}, line {line}: key {key!r} is defined twice "
                              f"(first at line {seen[key]}); delete or rename one of them")
        seen[key] = line
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node, deep=deep))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def read_yaml(path: str | Path) -> Any:
    """A YAML file, read strictly: a syntax error, or a key defined twice in one mapping, raises
    :class:`ConfigError` naming the file and the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    finally:
        loader.dispose()


def check_config_files(paths: Iterable[str | Path]) -> None:
    """Read config files strictly (:func:`read_yaml`); the Snakefile calls this on the files
    Snakemake loads, whose own reader keeps the last of two equal keys."""
    for path in paths:
        read_yaml(path)


def key_lines(path: str | Path) -> dict[str, int]:
    """Dotted key -> the line that sets it, for every mapping key of a YAML file."""
    lines: dict[str, int] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                dotted = f"{prefix}{key.value}"
                lines[dotted] = key.start_mark.line + 1
                walk(value, dotted + ".")

    try:
        walk(yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader), "")
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        pass
    return lines


def _located(err: ConfigError, files: Sequence[str | Path]) -> ConfigError:
    """``err`` with the file and line of each config key it names (the last file that sets the
    key, or the nearest enclosing key it sets, as later config files override earlier ones)."""
    where = [(str(f), key_lines(f)) for f in files]

    def place(match: re.Match) -> str:
        parts = match.group(1).split(".")
        for n in range(len(parts), 0, -1):
            found = [(f, lines[".".join(parts[:n])]) for f, lines in where if ".".join(parts[:n]) in lines]
            if found:
                file = "" if len(where) == 1 else f"{found[-1][0]}, "
                return f"{match.group(0)} ({file}line {found[-1][1]})"
        return match.group(0)

    text = re.sub(r"config key ([A-Za-z0-9_.-]+[A-Za-z0-9_-])", place, str(err))
    return ConfigError(f"{where[0][0]}: {text}" if len(where) == 1 else text)


def validate_config_files(config: dict[str, Any], files: Sequence[str | Path]) -> dict[str, Any]:
    """:func:`validate_config` and :func:`check_local_paths` of a config read from ``files``;
    an error names the file and line of each bad key."""
    try:
        config = validate_config(config)
        check_local_paths(config)
    except ConfigError as err:
        raise _located(err, files) from None
    return config


# ----------------------------------------------------------------------------- validating
def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error)
    if where.endswith(".api_key_env"):  # whatever it holds may be a secret: never shown
        return f"config key {where}: must be the name of an environment variable (the value is not shown)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"config key {where}: unknown key(s) {extra}; allowed keys: {allowed}"
    if error.validator == "enum":
        return f"config key {where}: {error.instance!r} is not allowed; allowed values: {error.validator_value}"
    if error.validator == "type":
        return f"config key {where}: {error.instance!r} has the wrong type; expected {error.validator_value}"
    if error.validator == "required":
        return f"config key {where}: {error.message}"
    if error.validator == "oneOf":
        return f"config key {where}: {error.instance!r} is not valid here ({error.schema.get('description', 'see the schema')})"
    return f"config key {where}: {error.message}"


@functools.lru_cache(maxsize=None)
def _schema_text(path: str) -> str:
    return Path(path).read_text()


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    return yaml.safe_load(_schema_text(str(path)))


def validate_config(config: dict[str, Any], schema: dict | None = None) -> dict[str, Any]:
    """Return a copy of ``config`` with defaults filled in; raise ConfigError naming every bad key."""
    schema = schema if schema is not None else load_schema()
    config = copy.deepcopy(dict(config))
    validator_class = _with_defaults(jsonschema.validators.validator_for(schema))
    errors = sorted(validator_class(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(_describe(e) for e in errors))
    _expand_data_dir(config)
    _check_references(config)
    return config


def _expand_data_dir(config: dict) -> None:
    """``{data_dir}`` in a dataset's or model's path becomes config ``data_dir``; the shot keys of
    a file explainer's ``source.files`` become text (YAML reads ``0:`` as a number)."""
    data_dir = str(config["data_dir"]).rstrip("/") or "/"
    for section in ("datasets", "models"):
        for entry in config[section].values():
            entry["path"] = entry["path"].replace("{data_dir}", data_dir)
    for model in config["models"].values():
        source = model.get("source")
        if source:
            source["files"] = {d: {str(k): v for k, v in files.items()} for d, files in source["files"].items()}


def shots_for(config: dict, dataset: str) -> list[int]:
    """The shot settings of a dataset: config ``explain.shots`` (a list for every dataset, or a
    mapping dataset -> list)."""
    shots = config["explain"]["shots"]
    return list(shots[dataset] if isinstance(shots, dict) else shots)


def demonstration_count(config: dict, dataset: str) -> int:
    """How many fixed demonstrations the data stage reserves for a dataset: the largest shot
    setting when ``explain.demonstrations`` is ``fixed`` and the dataset is explained, else 0."""
    e = config["explain"]
    engines = [m for m in e["explainers"] if config["models"].get(m, {}).get("backend") != "file"]  # files need none
    if e["demonstrations"] != "fixed" or dataset not in e["datasets"] or not engines:
        return 0
    return max(shots_for(config, dataset), default=0)


def is_file_explainer(spec: dict) -> bool:
    """A model entry whose explanations are read from files (``backend: file``)."""
    return spec.get("backend") == "file"


def explanation_source(spec: dict, name: str, dataset: str, shots: int | str) -> tuple[Path, dict]:
    """A file explainer's file for ``dataset`` at ``shots`` (relative names under its ``path``) and
    its join keys (``source.dataset_keys`` of the dataset, else ``source.keys``)."""
    source = spec["source"]
    files = source["files"].get(dataset) or {}
    if str(shots) not in files:
        raise ConfigError(f"config key models.{name}.source.files.{dataset}: no file for {shots} shot(s); "
                          f"it names {sorted(files)}")
    path = Path(files[str(shots)]).expanduser()
    if not path.is_absolute():
        path = Path(spec["path"]).expanduser() / path
    return path, source["dataset_keys"].get(dataset) or source["keys"]


def _file_explainer_problems(config: dict) -> list[str]:
    """A file explainer explains only: it names a file for every dataset x shots it explains, and
    is nobody's judge, classifier or embedding model."""
    models, problems = config["models"], []
    files = {name for name, m in models.items() if is_file_explainer(m)}
    for name in sorted(files):
        if not models[name].get("source"):
            problems.append(f"config key models.{name}.source: required when backend is file")
    uses = [("quality.judge", [config["quality"]["judge"]]),
            ("quality.bertscore.model", [config["quality"]["bertscore"]["model"]]),
            ("quality.mauve.model", [config["quality"]["mauve"]["model"]]),
            ("zeroshot.classifiers", config["zeroshot"]["classifiers"]), ("plr.models", config["plr"]["models"]),
            ("plr.zeroshot_models", config["plr"]["zeroshot_models"]), ("finetune.encoders", config["finetune"]["encoders"])]
    for key, names in uses:
        for name in names:
            if name in files:
                problems.append(f"config key {key}: model {name!r} has backend file: it only reads explanations "
                                "from files (explain.explainers)")
    explain = config["explain"]
    for name in explain["explainers"]:
        if name not in files or not models[name].get("source"):
            continue
        given = models[name]["source"]["files"]
        for dataset in explain["datasets"]:
            wanted = explain["shots"].get(dataset, []) if isinstance(explain["shots"], dict) else explain["shots"]
            missing = [k for k in wanted if str(k) not in given.get(dataset, {})]
            if missing:
                problems.append(f"config key models.{name}.source.files.{dataset}: no file for shots {missing} "
                                f"(explain.shots of {dataset!r}: {wanted})")
    return problems


def _check_references(config: dict) -> None:
    """Stages refer to datasets and models by name: every name must exist and be of the right kind."""
    datasets, models = config["datasets"], config["models"]
    problems = []

    def need(section: str, key: str, registry: dict, what: str, kind: str | None = None):
        for name in config.get(section, {}).get(key, []) or []:
            if name not in registry:
                problems.append(f"config key {section}.{key}: unknown {what} {name!r}; defined: {sorted(registry)}")
            elif kind and registry[name].get("kind") != kind:
                problems.append(f"config key {section}.{key}: model {name!r} is kind {registry[name].get('kind')!r}, needs {kind!r}")

    need("explain", "datasets", datasets, "dataset")
    need("explain", "explainers", models, "model", "causal")
    need("finetune", "datasets", datasets, "dataset")
    need("finetune", "encoders", models, "model", "encoder")
    need("zeroshot", "datasets", datasets, "dataset")
    need("zeroshot", "classifiers", models, "model", "causal")
    need("plr", "datasets", datasets, "dataset")
    need("plr", "models", models, "model")
    need("plr", "zeroshot_models", models, "model", "causal")
    plr = config.get("plr", {})
    for name in plr.get("explain_models") or []:
        if name not in (plr.get("models") or []):
            problems.append(f"config key plr.explain_models: {name!r} is not one of plr.models {plr.get('models') or []}")
    quality = config.get("quality", {})
    for key, value in (("judge", quality.get("judge")),
                       ("bertscore.model", quality.get("bertscore", {}).get("model")),
                       ("mauve.model", quality.get("mauve", {}).get("model"))):
        if value is not None and value not in models:
            problems.append(f"config key quality.{key}: unknown model {value!r}; defined: {sorted(models)}")
    for name, model in models.items():
        if model["backend"] == "openai" and not model.get("api_base"):
            problems.append(f"config key models.{name}.api_base: required when backend is openai")
        if model["serve"] and (model["backend"] != "vllm" or model["kind"] != "causal"):
            problems.append(f"config key models.{name}.serve: serves a causal model with backend vllm "
                            f"(vllm serve), not a {model['kind']} with backend {model['backend']!r}")
        if model["kind"] == "encoder" and model["backend"] != "transformers":
            problems.append(f"config key models.{name}.backend: an encoder runs with transformers, not {model['backend']!r}")
        problems += [p for p in [quant_type_problem(name, model.get("quantization"), model["backend"])] if p]
    for name, ds in datasets.items():
        for label in sorted(set(ds.get("label_words", {})) - set(ds["labels"])):
            problems.append(f"config key datasets.{name}.label_words.{label}: not one of the labels {ds['labels']}")
        split = ds.get("split", {})
        if not split.get("folds") and split.get("dev", 0) + split.get("test", 0) >= 1:
            problems.append(f"config key datasets.{name}.split: dev + test must be below 1")
        if split.get("folds") and split.get("dev", 0) + 1 / split["folds"] >= 1:
            problems.append(f"config key datasets.{name}.split: dev + 1/folds must be below 1")
    explain = config.get("explain", {})
    shots = explain.get("shots")
    if isinstance(shots, dict):
        for name in sorted(set(shots) - set(datasets)):
            problems.append(f"config key explain.shots.{name}: unknown dataset {name!r}; defined: {sorted(datasets)}")
        for name in explain.get("datasets", []):
            if name not in shots:
                problems.append(f"config key explain.shots: no shot settings for dataset {name!r} "
                                f"(explain.datasets lists it)")
    finetune = config.get("finetune", {})
    for name in finetune.get("datasets", []):
        if name in datasets and datasets[name].get("split", {}).get("dev") == 0 and finetune.get("early_stopping"):
            problems.append(f"config key finetune.early_stopping: datasets.{name}.split.dev is 0 (no dev split); "
                            "set finetune.early_stopping: false")
    for name, ds in datasets.items():
        split = ds.get("split", {})
        if split.get("folds_from") and not split.get("folds"):
            problems.append(f"config key datasets.{name}.split.folds_from: needs split.folds (the number of folds "
                            "in that column)")
        if split.get("folds_from") and demonstration_count(config, name):
            problems.append(f"config key explain.demonstrations: fixed demonstrations are taken out of the test folds, "
                            f"but datasets.{name}.split.folds_from fixes them; use per_example")
    problems += _model_problems(config) + _stage_problems(config) + _file_explainer_problems(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


# An API key pasted where the name of its environment variable belongs.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_PREFIXES = ("sk-", "sk_", "pk-", "rk-", "ghp_", "gho_", "ghs_", "github_pat_", "hf_", "xai-", "gsk_", "AKIA",
                 "AIza", "Bearer ")


def looks_like_a_key(value: str) -> bool:
    """Whether ``value`` looks like a secret rather than the name of an environment variable.

    >>> looks_like_a_key("OPENAI_API_KEY"), looks_like_a_key("sk-proj-abc123")
    (False, True)
    """
    if value.startswith(_KEY_PREFIXES) or not _ENV_NAME.match(value):
        return True
    return len(value) >= 32 and any(c.isdigit() for c in value) and any(c.islower() for c in value)


def _local_model_folders(models: dict) -> list[Path]:
    """Folders that hold local models: resources/models/* (the demo models, built or not) and
    every configured model folder that exists."""
    from .demo import DEMO_MODELS

    found = [Path("resources/models") / name for name in DEMO_MODELS]
    if Path("resources/models").is_dir():
        found += [p for p in Path("resources/models").iterdir() if p.is_dir()]
    found += [Path(m["path"]).expanduser() for m in models.values() if Path(m["path"]).expanduser().is_dir()]
    return list(dict.fromkeys(found))


def model_path_problem(name: str, path: str, models: dict) -> str | None:
    """Why a model's ``path`` is neither a local folder nor a hub id (None when it may be one).

    A path that does not exist is a hub id only in the hub's shape (``org/name``), and not when
    ``org`` is the name of a local folder that holds models (``models/SmolLM2-...`` is a typo of
    ``resources/models/SmolLM2-...``, not a hub id: it would fail on the network a minute later).
    """
    import difflib

    if Path(path).expanduser().exists():
        return None
    local = _local_model_folders(models)
    if Path(path) in local:  # a demo model that rule demo_model builds
        return None
    where = f"config key models.{name}.path"
    parts = path.split("/")
    local_looking = (path.startswith(("/", ".", "~", "resources/", "results/")) or "\\" in path or len(parts) > 2
                     or path.endswith("/"))
    holders = {folder.parent.name for folder in local}
    if not local_looking and not (len(parts) == 2 and (parts[0] in holders or Path(parts[0]).is_dir())):
        return None
    close = difflib.get_close_matches(parts[-1], [f.name for f in local], n=1, cutoff=0.6)
    hint = next((f" Did you mean {str(f)!r}?" for f in local if close and f.name == close[0]), "")
    relative = "" if Path(path).expanduser().is_absolute() else f" (relative to {os.getcwd()})"
    return (f"{where}: no folder {path!r}{relative}, and it is not a hub id (org/name) either: it looks "
            f"like a local path.{hint}")


def _model_problems(config: dict) -> list[str]:
    models, problems = config["models"], []
    for name, model in models.items():
        if model["backend"] == "openai" and looks_like_a_key(model["api_key_env"]):
            problems.append(f"config key models.{name}.api_key_env: holds something that is not the name of an "
                            "environment variable and looks like an API key (the value is not shown). Put the key "
                            "in an environment variable and name the variable here, e.g. api_key_env: OPENAI_API_KEY")
    explain = config["explain"]
    for name in explain["explainers"]:
        limit = models.get(name, {}).get("max_model_len")
        if limit is not None and limit <= explain["max_new_tokens"]:
            problems.append(f"config key models.{name}.max_model_len: {limit} tokens leave no room for a prompt "
                            f"before the {explain['max_new_tokens']} new tokens of explain.max_new_tokens")
    judge = config["quality"]["judge"]
    if judge in models and models[judge]["kind"] != "causal":
        problems.append(f"config key quality.judge: model {judge!r} is kind {models[judge]['kind']!r}; the G-Eval "
                        "judge rates explanations by next-token probabilities and needs a causal LM")
    return problems


def check_local_paths(config: dict) -> None:
    """The checks of a validated config against this machine's files (the Snakefile and
    :func:`load_config` call it; :func:`validate_config` does not, so a config that describes
    another machine's folders still validates): every model path is a folder here or a hub id
    (:func:`model_path_problem`)."""
    models = config["models"]
    problems = [problem for name, model in models.items() if model["backend"] not in ("openai", "file", "llamacpp")
                for problem in [model_path_problem(name, model["path"], models)] if problem]
    problems += [problem for name, model in models.items() if model["backend"] == "llamacpp"
                 for problem in [gguf_path_problem(name, model["path"])] if problem]
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _stage_problems(config: dict) -> list[str]:
    datasets, problems = config["datasets"], []
    for dataset, words in config["zeroshot"]["verbalizers"].items():
        if dataset not in datasets:
            problems.append(f"config key zeroshot.verbalizers.{dataset}: unknown dataset {dataset!r}; "
                            f"defined: {sorted(datasets)}")
            continue
        unknown = sorted(set(words) - set(datasets[dataset]["labels"]))
        if unknown:
            problems.append(f"config key zeroshot.verbalizers.{dataset}: unknown label(s) {unknown}; "
                            f"datasets.{dataset}.labels: {datasets[dataset]['labels']}")
    return problems


def runtime_only_keys(schema: dict | None = None) -> set[str]:
    """Dotted config keys marked ``x-runtime-only`` in the schema (``*`` for any registry name):
    they say how a job runs, not what it computes, so rules leave them out of their params.

    >>> "models.*.timeout_s" in runtime_only_keys()
    True
    """
    if schema is None:
        return set(_RUNTIME_ONLY_DEFAULT())
    found: set[str] = set()

    def walk(node: dict, path: str) -> None:
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        if node.get("x-runtime-only"):
            found.add(path)
        for key, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{key}" if path else key)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, f"{path}.*")

    walk(schema, "")
    return found


@functools.lru_cache(maxsize=1)
def _RUNTIME_ONLY_DEFAULT() -> frozenset[str]:  # noqa: N802 - a cached constant
    return frozenset(runtime_only_keys(load_schema()))


def result_keys(entry: dict, path: str, runtime_only: set[str] | None = None) -> dict:
    """``entry`` (the config value at dotted ``path``, e.g. ``models.*``) without its runtime-only
    keys, with every mapping's keys sorted: what a rule's params hold, so that neither a
    runtime-only change nor a reordered config file re-runs a job."""
    runtime_only = runtime_only if runtime_only is not None else runtime_only_keys()
    return _canonical(entry, path, runtime_only)


def is_runtime_only(path: str, runtime_only: set[str] | None = None) -> bool:
    """Whether dotted ``path`` (e.g. ``models.smollm2.timeout_s``) is a runtime-only key."""
    runtime_only = runtime_only if runtime_only is not None else runtime_only_keys()
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in runtime_only)


def _canonical(value: Any, path: str, runtime_only: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(value[k], f"{path}.{k}", runtime_only) for k in sorted(value)
                if not is_runtime_only(f"{path}.{k}", runtime_only)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, path, runtime_only) for v in value]
    return value


def model_entry(**keys: Any) -> dict:
    """One ``models:`` entry with the schema's defaults filled in (for library users and tests)."""
    return validate_config({"datasets": {"d": {"format": "jsonl", "path": "-", "labels": ["a", "b"]}},
                            "models": {"m": keys}})["models"]["m"]


def dataset_entry(**keys: Any) -> dict:
    """One ``datasets:`` entry with the schema's defaults filled in."""
    return validate_config({"datasets": {"d": keys}, "models": {"m": {"path": "-"}}})["datasets"]["d"]


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    """Read a YAML config file (strictly, :func:`read_yaml`), apply overrides (top-level keys),
    validate it."""
    config = read_yaml(path) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    config.update(overrides or {})
    return validate_config_files(config, [path])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m explainbench.config FILE...``: read and validate config files as a run would,
    printing what is wrong with the file, line and key (Snakemake's own reader of a
    ``--configfile`` names no line)."""
    import sys

    failed = 0
    for path in (sys.argv[1:] if argv is None else argv):
        try:
            load_config(path)
            print(f"{path}: valid")
        except ConfigError as err:
            print(err, file=sys.stderr)
            failed += 1
    return 1 if failed else 0


# ----------------------------------------------------------------------------- backend llamacpp
# models.<name>.quantization -> llama.cpp's file type (llama_cpp.LLAMA_FTYPE_*). The i-quants
# (iq2_xs, ...) need an importance matrix and are left out.
QUANT_TYPES: dict[str, str] = {
    "f32": "LLAMA_FTYPE_ALL_F32", "f16": "LLAMA_FTYPE_MOSTLY_F16", "bf16": "LLAMA_FTYPE_MOSTLY_BF16",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0", "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S", "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q3_k_s": "LLAMA_FTYPE_MOSTLY_Q3_K_S", "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q3_k_l": "LLAMA_FTYPE_MOSTLY_Q3_K_L", "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
}


QUANTIZED_WITH_LLAMACPP = ("use backend llamacpp with a GGUF file and quantization q8_0 or q4_0 (rule quantize), "
                           "as Buckmann & Hill ran it")


def quant_type_problem(name: str, quantization: str | None, backend: str = "llamacpp") -> str | None:
    """Why ``models.<name>.quantization`` is no quantisation ``backend`` can run here (None when it is one).

    llamacpp: one of llama.cpp's types (:data:`QUANT_TYPES`). transformers: none at all (bitsandbytes,
    its only quantiser, is in no env of this project). vllm: anything but bitsandbytes (vLLM reads it
    from the checkpoint or quantises itself: awq, gptq, fp8, ...).
    """
    if quantization is None:
        return None
    key = f"config key models.{name}.quantization"
    if backend == "llamacpp":
        if quantization.lower() in QUANT_TYPES:
            return None
        return f"{key}: {quantization!r} is not a llama.cpp quantisation type (backend llamacpp); known: {sorted(QUANT_TYPES)}"
    if backend == "transformers" or quantization.lower().startswith("bitsandbytes"):
        return (f"{key}: {quantization!r} is not available with backend {backend} (bitsandbytes, the quantiser it "
                f"would need, is installed by no env of this project); {QUANTIZED_WITH_LLAMACPP}")
    return None


def hub_parts(path: str) -> tuple[str, str] | None:
    """``org/repo/file.gguf`` -> (``org/repo``, ``file.gguf``) when ``path`` has the hub's shape
    and is no local path; else None."""
    parts = path.split("/")
    if (len(parts) < 3 or path.startswith(("/", ".", "~", "resources/", "results/")) or "\\" in path
            or Path(parts[0]).is_dir()):
        return None
    return "/".join(parts[:2]), "/".join(parts[2:])


def gguf_path_problem(name: str, path: str) -> str | None:
    """Why a llamacpp model's ``path`` is neither a local ``.gguf`` file nor ``org/repo/file.gguf``
    on the hub (None when it may be one)."""
    where = f"config key models.{name}.path"
    if not path.endswith(".gguf"):
        return f"{where}: backend llamacpp loads a GGUF file (a path ending in .gguf), not {path!r}"
    p = Path(path).expanduser()
    if p.is_file() or hub_parts(path):
        return None
    relative = "" if p.is_absolute() else f" (relative to {os.getcwd()})"
    return f"{where}: no GGUF file {path!r}{relative}, and it is not org/repo/file.gguf on the hub either"


if __name__ == "__main__":
    raise SystemExit(main())
