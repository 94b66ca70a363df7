"""The glue between Snakemake and the library: a :class:`Job` per rule run, condition names.

Every script under ``scripts/`` is the same three lines::

    from explainbench.workflow import run_script
    if __name__ == "__main__":
        run_script("explanations.generate", snakemake)

``run_script`` builds a :class:`Job` from the ``snakemake`` object once, sends the library's
log to the rule's log file, imports the stage module and calls its ``run(job)``.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

_CONDITION = re.compile(r"^llm-(?P<model>[A-Za-z0-9][A-Za-z0-9._-]*)-(?P<shots>\d+)shot(?P<masked>-masked)?$")

# What each rule's jobs read from the config besides their model and dataset entries: dotted
# keys, each handed to the job under its last part. The one list per rule: common.smk passes
# the result-changing ones as params (so a change re-runs the rule), and Job.settings holds all.
SETTINGS: dict[str, tuple[str, ...]] = {
    "explain": ("prompts_dir", "explain.show_label", "explain.demonstrations", "explain.max_new_tokens",
                "explain.temperature", "explain.chunk_size"),
    "score_explanations": ("prompts_dir", "quality"),
    "finetune": ("finetune.template", "finetune.text_template", "finetune.epochs", "finetune.batch_size",
                 "finetune.eval_batch_size", "finetune.learning_rate", "finetune.weight_decay",
                 "finetune.warmup_ratio", "finetune.schedule", "finetune.max_length", "finetune.early_stopping",
                 "finetune.early_stopping_patience",
                 "finetune.keep_checkpoints", "finetune.log_every_steps", "report.bootstrap"),
    "zeroshot": ("prompts_dir", "zeroshot.min_label_mass", "zeroshot.batch_size", "report.bootstrap"),
    # rule embed also embeds the occluded texts rule plr_explain explains (:data:`OCCLUSION_SETTINGS`)
    "embed": ("prompts_dir", "plr.pooling", "plr.layer", "plr.encoder_pooling", "plr.wrap_encoder_texts",
              "plr.embed_chunk_size", "plr.seed", "plr.explain_ngram", "plr.explain_max_texts",
              "plr.explain_texts_per_call"),
    "plr_curve": ("plr.n_per_class", "plr.draws", "plr.penalty", "plr.cv_folds", "plr.seed"),
    "plr_explain": ("plr.n_per_class", "plr.draws", "plr.penalty", "plr.cv_folds", "plr.seed",
                    "plr.explain_top_k", "plr.explain_ngram", "plr.explain_max_texts",
                    "plr.explain_n_per_class", "plr.explain_min_count"),
    "generation_speed": ("prompts_dir", "plr.speed_prompts", "plr.speed_max_new_tokens"),
    "quantization_table": ("models", "plr.seed"),
    "quality_table": ("models",),
    "classification_table": ("report.bootstrap",),
    "plr_table": ("models", "plr.seed", "report.top_phrases"),
}


def _lookup(config: dict, dotted: str) -> Any:
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


# Which texts rule plr_explain explains, and how they are occluded: rule embed's settings for the
# models whose PLR is explained (:func:`explained_plr_models`), and only theirs.
OCCLUSION_SETTINGS = ("plr.seed", "plr.explain_ngram", "plr.explain_max_texts", "plr.explain_texts_per_call")


def explained_plr_models(config: dict) -> list[str]:
    """The PLR models whose PLR is explained (``plr.explain_models``; null: all ``plr.models``)."""
    plr = config["plr"]
    return plr["models"] if plr["explain_models"] is None else plr["explain_models"]


def embed_params(config: dict, model: str) -> dict[str, Any]:
    """Rule embed's params for ``model``: the occlusion settings only when its PLR is explained
    (so that they re-run the embeddings of those models alone)."""
    params = rule_params(config, "embed")
    if model not in explained_plr_models(config):
        for key in OCCLUSION_SETTINGS:
            params.pop(key.rsplit(".", 1)[-1], None)
    return params


def rule_settings(config: dict, rule: str) -> dict[str, Any]:
    """The settings a rule's jobs read (:data:`SETTINGS`), by the last part of each key."""
    return {key.rsplit(".", 1)[-1]: _lookup(config, key) for key in SETTINGS.get(rule, ())}


def rule_params(config: dict, rule: str) -> dict[str, Any]:
    """:func:`rule_settings` less its runtime-only keys, keys sorted: a rule's ``params``."""
    from .config import is_runtime_only, result_keys

    return {key.rsplit(".", 1)[-1]: result_keys(_lookup(config, key), key) for key in SETTINGS.get(rule, ())
            if not is_runtime_only(key)}


@dataclass(frozen=True)
class Job:
    """One run of one rule, as a stage's ``run(job)`` sees it.

    ``input``, ``output`` and ``wildcards`` map names to paths and values; ``config`` is the
    validated config (defaults filled in); ``settings`` is what :data:`SETTINGS` names for the
    rule. The dataset and model are the wildcards' (``{dataset}``, ``{model}``).
    """

    input: dict[str, Any]
    output: dict[str, Any]
    config: dict[str, Any]
    wildcards: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    threads: int = 1
    log: str | None = None
    rule: str = ""

    @classmethod
    def from_snakemake(cls, smk) -> "Job":
        return cls(input=dict(smk.input.items()), output=dict(smk.output.items()), config=smk.config,
                   wildcards=dict(smk.wildcards.items()), settings=rule_settings(smk.config, smk.rule),
                   threads=int(smk.threads), log=smk.log[0] if smk.log else None, rule=smk.rule)

    # the job's dataset and model: their wildcards, and their validated config entries
    dataset = property(lambda self: self.wildcards["dataset"])
    model = property(lambda self: self.wildcards["model"])
    dataset_spec = property(lambda self: self.config["datasets"][self.dataset])
    model_spec = property(lambda self: self.config["models"][self.model])

    def wildcard_int(self, name: str) -> int:
        return int(self.wildcards[name])


def run_script(stage: str, smk) -> Any:
    """What every script does: ``explainbench.<stage>.run(job)`` (``stage`` may name another
    function as ``module:function``), logged to the rule's log, tracebacks included."""
    job = Job.from_snakemake(smk)
    module, _, function = stage.partition(":")
    with script_logging(job.log):
        return getattr(importlib.import_module(f"explainbench.{module}"), function or "run")(job)


# ----------------------------------------------------------------------------- conditions

def llm_condition(model: str, shots: int, masked: bool = False) -> str:
    return f"llm-{model}-{shots}shot" + ("-masked" if masked else "")


def parse_condition(condition: str) -> tuple[str, int]:
    """``llm-<explainer>-<k>shot`` (or ``...-masked``) -> (explainer, k)."""
    match = _CONDITION.match(condition)
    if not match:
        raise ValueError(f"not an LLM-explanation condition: {condition!r} (expected llm-<model>-<k>shot[-masked])")
    return match["model"], int(match["shots"])


def shots_for(config: dict, dataset: str) -> list[int]:
    """The shot settings of a dataset (:func:`explainbench.config.shots_for`)."""
    from .config import shots_for as shots

    return shots(config, dataset)


def demonstration_count(config: dict, dataset: str) -> int:
    """Fixed demonstrations the data stage reserves (:func:`explainbench.config.demonstration_count`)."""
    from .config import demonstration_count as count

    return count(config, dataset)


def fold_list(config: dict, dataset: str) -> list[int]:
    """A dataset's folds: ``0 .. split.folds - 1``, or ``[0]`` (the single split)."""
    return list(range(config["datasets"][dataset]["split"]["folds"] or 1))


def condition_names(config: dict, dataset: str, kinds: list[str], masked: bool = False) -> list[str]:
    """Explanation conditions for a dataset: none, human, and one per explainer x shots (and,
    with ``masked``, its ``-masked`` twin).

    ``human`` needs reference explanations and ``llm-*`` needs the dataset in the explain
    stage; conditions a dataset cannot have are left out.
    """
    out = []
    if "none" in kinds:
        out.append("none")
    if "human" in kinds and config["datasets"][dataset]["task"] == "nli":
        out.append("human")
    if "llm" in kinds and dataset in config["explain"]["datasets"]:
        for m in config["explain"]["explainers"]:
            for k in shots_for(config, dataset):
                out += [llm_condition(m, k)] + ([llm_condition(m, k, True)] if masked else [])
    return out


def stage_conditions(config: dict, stage: str, dataset: str) -> list[str]:
    """The conditions stage ``finetune`` or ``zeroshot`` runs for a dataset (its ``conditions``
    and ``mask_label_words``)."""
    section = config[stage]
    return condition_names(config, dataset, section["conditions"], section["mask_label_words"])


def quantized_models(config: dict) -> list[str]:
    """The PLR models that are llama.cpp files at a quantisation (``backend: llamacpp`` with
    ``quantization``): the rows of the quantisation table, timed by rule ``generation_speed``."""
    models = config["models"]
    return [m for m in config["plr"]["models"] if models[m]["backend"] == "llamacpp" and models[m]["quantization"]]


def demo_data_names() -> list[str]:
    from .demo import DEMO_DATA

    return sorted(DEMO_DATA)


def demo_model_names() -> list[str]:
    from .demo import DEMO_MODELS

    return sorted(DEMO_MODELS)


# ----------------------------------------------------------------------------- failed jobs

_ERROR = re.compile(r"^Error in rule (?P<rule>[A-Za-z_][A-Za-z0-9_]*):\s*$")
_FIELD = re.compile(r"^\s{4}(?P<key>[a-z_ ]+):\s?(?P<value>.*)$")


def failed_jobs(log_text: str) -> list[dict]:
    """The failed jobs a Snakemake log reports (its "Error in rule ..." blocks), once each, in
    order: ``rule``, ``jobid``, ``output`` (its first output file), ``logs`` (the rule's log and,
    under SLURM, the job's SLURM log) and ``message``."""
    jobs: dict[tuple, dict] = {}
    current: dict | None = None

    def close():
        if current is not None:
            jobs.setdefault((current["rule"], current["jobid"], current["output"]), current)

    for line in log_text.splitlines():
        head = _ERROR.match(line)
        if head:
            close()
            current = {"rule": head["rule"], "jobid": "", "output": "", "logs": [], "message": ""}
            continue
        if current is None:
            continue
        field = _FIELD.match(line)
        if field is None:
            if not line.startswith(" " * 5):  # the block ends at the first line that is not its own
                close()
                current = None
            continue
        key, value = field["key"].strip(), field["value"].strip()
        if key == "log":
            value = value.split(" (check log file", 1)[0]
            current["logs"] = [v.strip() for v in value.split(",") if v.strip()]
        elif key == "output":
            current["output"] = value.split(",")[0].strip()
        elif key in ("jobid", "message"):
            current[key] = "" if value == "None" else value
    close()
    return list(jobs.values())


def failure_summary(log_paths: Sequence[str | Path]) -> str:
    """A short list of the failed jobs of a run and their logs, from Snakemake's own log (what
    the Snakefile's ``onerror`` prints at the end of a run)."""
    jobs = []
    for path in log_paths:
        try:
            jobs += failed_jobs(Path(path).read_text(errors="replace"))
        except OSError:
            continue
    if not jobs:
        return "explainbench: the run failed before any job did; see the Snakemake log above."
    lines = [f"explainbench: {len(jobs)} failed job(s); every job that does not depend on them has run "
             "(keep-going), and a re-run starts from here:"]
    for job in jobs:
        logs = ", ".join(job["logs"]) or "no log file (see the Snakemake log)"
        output = f" -> {job['output']}" if job["output"] else ""
        lines.append(f"  - {job['rule']}{output}: log {logs}")
    return "\n".join(lines)


@contextlib.contextmanager
def script_logging(log_path: str | Path | None, level: int = logging.INFO):
    """Send the library's log (and any traceback) to the rule's log file and to stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text("")  # a fresh log per run...
        # ...appended to: engines that configure logging (vLLM calls logging.config.dictConfig)
        # close every existing handler, and a closed append-mode handler reopens on the next record.
        handlers.append(logging.FileHandler(log_path, mode="a"))
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        yield logging.getLogger("explainbench")
    except BaseException:
        logging.getLogger("explainbench").error("failed:\n%s", traceback.format_exc())
        raise
