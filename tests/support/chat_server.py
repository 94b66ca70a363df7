"""A chat-only OpenAI-compatible HTTP server backed by a real local model (dev tooling for tests).

It answers what GPT-4o mini's API answers and nothing else: ``POST /v1/chat/completions``
(greedy ``content`` of up to ``max_tokens`` tokens; with ``logprobs: true`` and
``top_logprobs: k``, the top ``k`` log-probabilities of the first answer token, computed by the
model over its whole vocabulary), and HTTP 404 for every other route, ``/v1/completions``
included, as OpenAI answers for chat-only models. The model behind it is any
:class:`explainbench.engines.Backend` with a transformers model (``backend.model``), which applies
its chat template to the messages. It counts the requests per route.
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatOnlyServer:
    """``with ChatOnlyServer(backend, "gpt-4o-mini") as server: server.base`` (…/v1)."""

    def __init__(self, backend, served_name: str):
        self.backend, self.served_name = backend, served_name
        self.requests: Counter = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                with server.lock:
                    server.requests[("GET", self.path)] += 1
                self._send(404, {"error": {"message": f"Unknown request URL: GET {self.path}", "type": "invalid_request_error"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server.lock:
                    server.requests[("POST", self.path)] += 1
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "This is a chat model and not supported in the "
                                                          "v1/completions endpoint. Did you mean to use "
                                                          "v1/chat/completions?", "type": "invalid_request_error"}})
                    return
                if body.get("model") != server.served_name:
                    self._send(404, {"error": {"message": f"The model {body.get('model')!r} does not exist"}})
                    return
                with server.lock:  # one forward pass at a time on the shared model
                    self._send(200, server.answer(body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def first_token_logprobs(self, messages: list[dict]):
        """The model's log-probabilities of the first answer token after the chat-templated messages."""
        torch = self.backend.torch
        ids = self.backend.encode(messages)
        with torch.no_grad():
            logits = self.backend.model(input_ids=torch.tensor([ids], device=self.backend.device)).logits[0, -1]
        return torch.log_softmax(logits.float(), -1), len(ids)

    def answer(self, body: dict) -> dict:
        messages, max_tokens = body["messages"], int(body.get("max_tokens") or 16)
        logprobs = None
        if body.get("logprobs"):
            logp, n_prompt = self.first_token_logprobs(messages)
            k = int(body.get("top_logprobs") or 0)
            values, ids = self.backend.torch.topk(logp, max(k, 1))
            tok = self.backend.tokenizer
            top = [{"token": tok.decode([int(i)]), "logprob": float(v)} for v, i in zip(values, ids)]
            logprobs = {"content": [{"token": top[0]["token"], "logprob": top[0]["logprob"], "top_logprobs": top[:k]}]}
        if logprobs and max_tokens == 1:  # the greedy answer is the most likely first token: no second pass
            text, finish, usage = top[0]["token"], "length", {"prompt_tokens": n_prompt, "completion_tokens": 1}
        else:
            gen = self.backend.generate([messages], max_new_tokens=max_tokens, temperature=0.0)[0]
            text, finish = gen.text, gen.finish_reason
            usage = {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens}
        choice: dict = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        if logprobs:
            choice["logprobs"] = logprobs
        return {"id": "chatcmpl-test", "object": "chat.completion", "model": self.served_name, "choices": [choice],
                "usage": usage}

    def __enter__(self) -> "ChatOnlyServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
