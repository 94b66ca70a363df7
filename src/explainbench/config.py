"""Load the workflow config, fill in schema defaults, and fail early with clear messages."""
from __future__ import annotations

import copy
import fnmatch
import functools
from pathlib import Path
from typing import Any

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


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error)
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
    _check_references(config)
    return config


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
    quality = config.get("quality", {})
    for key, value in (("judge", quality.get("judge")),
                       ("bertscore.model", quality.get("bertscore", {}).get("model")),
                       ("mauve.model", quality.get("mauve", {}).get("model"))):
        if value is not None and value not in models:
            problems.append(f"config key quality.{key}: unknown model {value!r}; defined: {sorted(models)}")
    for name, model in models.items():
        if model["backend"] == "openai" and not model.get("api_base"):
            problems.append(f"config key models.{name}.api_base: required when backend is openai")
        if model["kind"] == "encoder" and model["backend"] != "transformers":
            problems.append(f"config key models.{name}.backend: an encoder runs with transformers, not {model['backend']!r}")
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
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


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
    """Read a YAML config file, apply overrides (top-level keys), validate it."""
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    config.update(overrides or {})
    try:
        return validate_config(config)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
