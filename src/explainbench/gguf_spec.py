"""What a ``backend: llamacpp`` model entry may say, checked without llama.cpp: its ``path`` (a GGUF
file, local or ``org/repo/file.gguf`` on the hub) and its ``quantization`` (a type llama.cpp's
quantizer makes). :mod:`explainbench.config` checks entries with these; :mod:`explainbench.quantize`
makes and reads the files."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ExplainBenchError

# The quantized file of a model and its record: the same templates as PATHS in workflow/rules/common.smk.
QUANTIZED_GGUF = "results/models/{model}/{quantization}.gguf"
QUANTIZED_INFO = "results/models/{model}/{quantization}.json"

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


class GGUFError(ExplainBenchError):
    """A GGUF file that is not there, not a GGUF, or a quantisation llama.cpp does not know."""


def quant_type_problem(name: str, quantization: str | None) -> str | None:
    """Why ``models.<name>.quantization`` is no type llama.cpp can make (None when it is one)."""
    if quantization is None or quantization.lower() in QUANT_TYPES:
        return None
    return (f"config key models.{name}.quantization: {quantization!r} is not a llama.cpp quantisation type "
            f"(backend llamacpp); known: {sorted(QUANT_TYPES)}")


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


