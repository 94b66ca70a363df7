"""GGUF files for the llama.cpp engine: where a model's file is, its quantisation, what it holds.

A model with ``backend: llamacpp`` names a GGUF file (``path``: a local ``.gguf`` file, or
``org/repo/file.gguf`` on the Hugging Face hub). With ``quantization`` set (``q8_0``, ``q4_0``,
``q4_k_m``, ``q2_k``, ``f16``, ``f32``, ...), rule ``quantize`` makes that type from the source
file with llama.cpp's own quantizer, once per model x type::

    results/models/{model}/{quantization}.gguf    the quantised file
    results/models/{model}/{quantization}.json    what it holds: size and every tensor's type

Not every tensor gets the type asked for: llama.cpp falls back to another type for tensors whose
rows do not split into its blocks (SmolLM2's 576-wide rows are no multiple of the 256 that k-quants
need, so a "q2_k" SmolLM2 is mostly q4_0). The JSON records the types the file actually got
(``dominant_type``, and the share of weights by type), read back from the file, so a table can say
what a file is rather than what was asked for.
"""
from __future__ import annotations

import ctypes
import logging
import os
import time
from collections import Counter
from pathlib import Path

from ..config import QUANT_TYPES, gguf_path_problem, hub_parts, quant_type_problem
from ..errors import ExplainBenchError
from ..io import atomic_path, write_json

log = logging.getLogger(__name__)

# The quantized file of a model and its record: PATHS in workflow/rules/common.smk uses these.
QUANTIZED_GGUF = "results/models/{model}/{quantization}.gguf"
QUANTIZED_INFO = "results/models/{model}/{quantization}.json"


class GGUFError(ExplainBenchError):
    """A GGUF file that is not there, not a GGUF, or a quantisation llama.cpp does not know."""


__all__ = ["QUANT_TYPES", "QUANTIZED_GGUF", "GGUFError", "model_gguf", "quantize_gguf", "quantized_gguf", "run",
           "source_gguf", "tensor_types"]


def source_gguf(spec: dict, name: str) -> Path:
    """The model's own GGUF file, local (downloaded from the hub first for ``org/repo/file.gguf``)."""
    path = spec["path"]
    problem = gguf_path_problem(name, path)
    if problem:
        raise GGUFError(f"model {name!r}: {problem}")
    local = Path(path).expanduser()
    if local.is_file():
        return local
    repo, filename = hub_parts(path)
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo, filename))
    except Exception as err:  # noqa: BLE001 - offline, unknown repo, no such file: name the key
        raise GGUFError(f"model {name!r}: cannot download {filename!r} from hub repo {repo!r} "
                        f"(models.{name}.path): {type(err).__name__}: {err}") from None


def quantized_gguf(name: str, quantization: str) -> Path:
    """Where rule ``quantize`` puts model ``name``'s file of type ``quantization``."""
    return Path(QUANTIZED_GGUF.format(model=name, quantization=quantization.lower()))


def model_gguf(spec: dict, name: str) -> Path:
    """The GGUF file a llamacpp model runs: its own file, or with ``quantization`` the quantised
    file in ``results/models/`` (made now if rule ``quantize`` has not made it yet)."""
    quant = spec.get("quantization")
    if not quant:
        return source_gguf(spec, name)
    problem = quant_type_problem(name, quant)
    if problem:
        raise GGUFError(f"model {name!r}: {problem}")
    out = quantized_gguf(name, quant)
    if not out.is_file():
        log.info("no %s yet (rule quantize): quantising now", out)
        quantize_gguf(source_gguf(spec, name), out, quant, name)
    return out


def quantize_gguf(src: str | Path, dst: str | Path, quantization: str, name: str = "model") -> Path:
    """llama.cpp's quantizer (``llama_model_quantize``): ``src`` as type ``quantization`` into ``dst``
    (written atomically). Requantising an already quantised file is allowed (it is how a Q4_1
    file becomes f32 or q8_0), at the cost of the source's own rounding."""
    quant = quantization.lower()
    problem = quant_type_problem(name, quant)
    if problem:
        raise GGUFError(f"model {name!r}: {problem}")
    try:
        import llama_cpp
    except ImportError as err:
        raise GGUFError(f"model {name!r}: quantising needs llama-cpp-python ({err}); see requirements/cpu.txt") from None
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[quant])
    params.allow_requantize = True
    params.nthread = len(os.sched_getaffinity(0))
    t0 = time.time()
    with atomic_path(dst) as tmp:
        status = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if status != 0:
            raise GGUFError(f"model {name!r}: llama.cpp could not quantise {str(src)!r} to {quant!r} "
                            f"(models.{name}.quantization; llama_model_quantize returned {status})")
    log.info("quantised %s to %s (%s) in %.1fs", src, dst, quant, time.time() - t0)
    return Path(dst)


def tensor_types(path: str | Path) -> dict:
    """What a GGUF file holds, read back from it (the ``gguf`` package): its size, its file type,
    every tensor's type, and per type the tensors and the share of all weights they hold.
    ``dominant_type`` is the type that holds the most weights."""
    from gguf import GGUFReader

    path = Path(path)
    try:
        reader = GGUFReader(str(path))
    except (OSError, ValueError) as err:
        raise GGUFError(f"{path}: not a readable GGUF file: {err}") from None
    per_tensor = {t.name: t.tensor_type.name for t in reader.tensors}
    weights: Counter = Counter()
    count: Counter = Counter()
    for t in reader.tensors:
        weights[t.tensor_type.name] += int(t.n_elements)
        count[t.tensor_type.name] += 1
    total = sum(weights.values()) or 1
    field = reader.fields.get("general.file_type")
    file_type = int(field.parts[field.data[0]][0]) if field is not None else None
    by_type = {k: {"tensors": count[k], "weights": weights[k], "share": weights[k] / total}
               for k, _ in weights.most_common()}
    return {"file": str(path), "size_bytes": path.stat().st_size, "file_type": file_type,
            "dominant_type": weights.most_common(1)[0][0] if weights else None,
            "types": by_type, "tensors": per_tensor}


def run(job) -> dict:
    """Rule ``quantize``: one llamacpp model's GGUF as its configured type, and its record."""
    spec, name = job.model_spec, job.model
    quant = job.wildcards["quantization"]
    if (spec.get("quantization") or "").lower() != quant:
        raise GGUFError(f"model {name!r}: asked for {quant!r}, but models.{name}.quantization is "
                        f"{spec.get('quantization')!r}")
    src = source_gguf(spec, name)
    quantize_gguf(src, job.output["gguf"], quant, name)
    info = {"model": name, "requested": quant, "source": str(spec["path"]),
            "source_size_bytes": src.stat().st_size, **tensor_types(job.output["gguf"])}
    info["file"] = str(job.output["gguf"])
    write_json(info, job.output["info"])
    log.info("%s %s: %.1f MB, dominant tensor type %s (%s)", name, quant, info["size_bytes"] / 1e6,
             info["dominant_type"], ", ".join(f"{k} {v['share']:.0%}" for k, v in info["types"].items()))
    return info
