"""Glue between the Snakemake rules and the library: condition names, script logging."""
from __future__ import annotations

import contextlib
import logging
import re
import sys
import traceback
from pathlib import Path

_CONDITION = re.compile(r"^llm-(?P<model>[A-Za-z0-9][A-Za-z0-9._-]*)-(?P<shots>\d+)shot$")


def demo_data_names() -> list[str]:
    from .demo import DEMO_DATA

    return sorted(DEMO_DATA)


def demo_model_names() -> list[str]:
    from .demo import DEMO_MODELS

    return sorted(DEMO_MODELS)


def llm_condition(model: str, shots: int) -> str:
    return f"llm-{model}-{shots}shot"


def parse_condition(condition: str) -> tuple[str, int]:
    """``llm-<explainer>-<k>shot`` -> (explainer, k)."""
    match = _CONDITION.match(condition)
    if not match:
        raise ValueError(f"not an LLM-explanation condition: {condition!r} (expected llm-<model>-<k>shot)")
    return match["model"], int(match["shots"])


def condition_names(config: dict, dataset: str, kinds: list[str]) -> list[str]:
    """Explanation conditions for a dataset: none, human, and one per explainer x shots.

    ``human`` needs reference explanations and ``llm-*`` needs the dataset in the explain
    stage; conditions a dataset cannot have are left out.
    """
    out = []
    if "none" in kinds:
        out.append("none")
    has_human = config["datasets"][dataset].get("task", "nli") == "nli"
    if "human" in kinds and has_human:
        out.append("human")
    if "llm" in kinds and dataset in config["explain"]["datasets"]:
        out += [llm_condition(m, k) for m in config["explain"]["explainers"] for k in config["explain"]["shots"]]
    return out


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
