"""Where a number came from: a short, stable hash of the validated config.

Every row of a report table carries this hash beside the model path and seed, so a figure
can be traced to the exact configuration that produced it. Snakemake re-runs a job when its
params change, so after a run every per-run file in a table agrees with the current config.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

# Sections that say how or where jobs run, not what they compute: left out of the hash, so
# moving a run to a cluster does not change the identity of its results. Runtime-only keys
# (``x-runtime-only`` in the schema: timeouts, batch sizes, memory shares) are left out too.
EXECUTION_ONLY_KEYS = ("slurm",)


def config_hash(config: dict[str, Any], length: int = 12) -> str:
    """First ``length`` hex digits of the SHA-256 of the config as canonical JSON.

    Pass the validated config (defaults filled in), so writing a default explicitly or
    leaving it out gives the same hash. Key order does not matter.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config_hash needs a dict, got {type(config).__name__}")
    from .config import result_keys

    kept = {k: result_keys(v, k) for k, v in config.items() if k not in EXECUTION_ONLY_KEYS}
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]
