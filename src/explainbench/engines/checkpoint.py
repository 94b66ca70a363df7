"""A long job's crash checkpoint: what its engines have already answered, kept until the job
has written every one of its outputs.

Snakemake deletes all declared outputs of a job that fails or is killed (and those of an
incomplete job before it runs again), so a checkpoint is never an output: it is a folder beside
the job's first output, ``<output>.partial/``, that Snakemake does not know about. A stage opens
it around its work::

    with job_checkpoint(job.output["predictions"]) as checkpoint, open_backend(spec, name) as engine:
        engine = checkpoint.wrap(engine)        # answers are stored per prompt as they come
        ...                                     # compute, write every output
    # the block ended cleanly: the folder is gone; had it raised, the folder would stay

The next run of a job that died answers every call it answered before from the folder and
asks the engine only for the rest; a call whose prompts are all answered never starts the
engine. Answers are keyed by a hash of the model's result-changing settings, the method, the
prompt and the call's arguments, so a changed prompt, model or setting is computed again.

- :class:`CheckpointedBackend` (``checkpoint.wrap``): ``label_logprobs`` and ``embed`` answers,
  one ``calls-*.npz`` file per engine call; ``generate`` passes through (explanations keep
  their own per-split chunks, :mod:`explainbench.explanations.generate`).
- :meth:`Checkpoint.section`: the result of one whole step (BERTScore's arrays).
- :func:`remove_when_done`: a finished output's own chunk folder is removed at the end of the
  enclosing :func:`job_checkpoint` block (at once outside one), so a job that writes several
  outputs keeps the finished ones' chunks until the last output is written.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .base import Backend

log = logging.getLogger(__name__)

_PENDING: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("explainbench_pending", default=None)


def partial_dir(output: str | Path) -> Path:
    """The checkpoint folder of an output: ``<output>.partial`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def remove_when_done(folder: str | Path) -> None:
    """Remove a chunk folder now, or, inside a :func:`job_checkpoint` block, when the block ends
    cleanly (after the job's last output is written)."""
    pending = _PENDING.get()
    if pending is None:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        pending.append(Path(folder))


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:24]


class Checkpoint:
    """The finished work of one job in ``folder`` (created on the first save); with
    ``folder=None``, nothing is kept (a library call outside a job)."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder is not None else None
        self._answers: dict[str, np.ndarray] | None = None
        self._next = 0

    # -- per-prompt answers --------------------------------------------------------------------
    def answers(self) -> dict[str, np.ndarray]:
        """key -> one prompt's answer (a row), from every readable ``calls-*.npz``."""
        if self._answers is None:
            self._answers = {}
            files = sorted(self.folder.glob("calls-*.npz")) if self.folder and self.folder.is_dir() else []
            for path in files:
                try:
                    with np.load(path, allow_pickle=False) as data:
                        self._answers.update(zip(data["keys"].tolist(), data["values"]))
                except (OSError, ValueError, KeyError) as err:
                    log.warning("%s: unreadable (%s); its answers are computed again", path, err)
            self._next = max((int(p.stem.split("-")[1]) for p in files), default=-1) + 1
            if self._answers:
                log.info("resuming from %s: %d answer(s) already computed", self.folder, len(self._answers))
        return self._answers

    def save(self, keys: Sequence[str], values: np.ndarray) -> None:
        """Store one engine call's answers (``values[i]`` answers ``keys[i]``)."""
        from ..io import atomic_path

        values = np.asarray(values)
        self.answers().update(zip(keys, values))
        if self.folder is None:
            return
        with atomic_path(self.folder / f"calls-{self._next:06d}.npz") as tmp:
            np.savez(tmp, keys=np.asarray(list(keys), dtype=str), values=values)
        self._next += 1

    # -- whole steps ---------------------------------------------------------------------------
    def section(self, name: str, inputs, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """``compute()``'s arrays, stored as ``section-<name>.npz``; a later run with the same
        ``inputs`` (anything JSON-able that decides the result) reads them instead."""
        from ..io import atomic_path

        if self.folder is None:
            return compute()
        path, key = self.folder / f"section-{name}.npz", _key(name, inputs)
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    if str(data["__key__"]) == key:
                        log.info("%s: %s already computed; read from the checkpoint", path, name)
                        return {k: data[k] for k in data.files if k != "__key__"}
            except (OSError, ValueError, KeyError) as err:
                log.warning("%s: unreadable (%s); %s is computed again", path, err, name)
        result = compute()
        with atomic_path(path) as tmp:
            np.savez(tmp, __key__=np.asarray(key), **{k: np.asarray(v) for k, v in result.items()})
        return result

    def wrap(self, backend: Backend) -> "CheckpointedBackend":
        return CheckpointedBackend(backend, self)

    def remove(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def job_checkpoint(output: str | Path) -> Iterator[Checkpoint]:
    """The checkpoint of the job whose first output is ``output``; removed, with every folder
    handed to :func:`remove_when_done` inside the block, only when the block ends cleanly."""
    checkpoint = Checkpoint(partial_dir(output))
    pending: list[Path] = []
    token = _PENDING.set(pending)
    try:
        yield checkpoint
    except BaseException:
        kept = [str(p) for p in [checkpoint.folder, *pending] if p.exists()]
        if kept:
            log.warning("the job failed; its finished work stays in %s for the next run", ", ".join(kept))
        raise
    else:
        for folder in [*pending, checkpoint.folder]:
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        _PENDING.reset(token)


class CheckpointedBackend(Backend):
    """An engine whose ``label_logprobs`` and ``embed`` answers are stored in a
    :class:`Checkpoint` per prompt; only prompts without a stored answer reach the engine.

    ``computed`` and ``reused`` count prompts (texts) answered by the engine and by the
    checkpoint; ``engine_calls`` counts the calls that reached the engine."""

    def __init__(self, inner: Backend, checkpoint: Checkpoint):
        super().__init__(inner.spec, inner.name)
        self.inner, self.checkpoint = inner, checkpoint
        from ..config import result_keys

        self._model_key = result_keys(inner.spec, "models.*")
        self.computed = self.reused = self.engine_calls = 0

    # prompts are rendered and tokenised by the engine's own tokenizer (no engine start)
    @property
    def tokenizer(self):
        return self.inner.tokenizer

    def render(self, prompt):
        return self.inner.render(prompt)

    def encode(self, prompt):
        return self.inner.encode(prompt)

    @property
    def chat_only(self) -> bool:
        return self.inner.chat_only

    def option_ids(self, option):
        return self.inner.option_ids(option)

    def answer_reserve(self, options):
        return self.inner.answer_reserve(options)

    def check_fits(self, prompts, reserve, ids, where):
        self.inner.check_fits(prompts, reserve, ids, where)

    def _through(self, method: str, items: Sequence, args: dict, call: Callable[[list], np.ndarray]) -> np.ndarray:
        keys = [_key(self._model_key, method, item, args) for item in items]
        answers = self.checkpoint.answers()
        todo = [i for i, k in enumerate(keys) if k not in answers]
        self.reused += len(keys) - len(todo)
        if todo:
            values = np.asarray(call([items[i] for i in todo]))
            if len(values) != len(todo):
                return values  # the caller's own shape check names the problem
            self.engine_calls += 1
            self.computed += len(todo)
            self.checkpoint.save([keys[i] for i in todo], values)
        if not keys:
            return np.asarray(call([]))
        return np.stack([answers[k] for k in keys])

    def label_logprobs(self, prompts, options):
        options = list(options)
        return self._through("label_logprobs", list(prompts), {"options": options},
                             lambda todo: np.asarray(self.inner.label_logprobs(todo, options), dtype=float))

    def embed(self, texts, *, pooling: str = "last", layer: int = -1):
        return self._through("embed", list(texts), {"pooling": pooling, "layer": layer},
                             lambda todo: np.asarray(self.inner.embed(todo, pooling=pooling, layer=layer),
                                                     dtype=np.float32))

    def generate(self, prompts, **kwargs):
        return self.inner.generate(prompts, **kwargs)

    def start(self) -> None:
        self.inner.start()

    def close(self) -> None:
        self.inner.close()

    def report(self) -> str:
        """One line for the log: what the engine computed and what the checkpoint answered."""
        return (f"model {self.name}: {self.computed} prompt(s) computed in {self.engine_calls} engine call(s), "
                f"{self.reused} answered from the checkpoint")


__all__ = ["Checkpoint", "CheckpointedBackend", "job_checkpoint", "partial_dir", "remove_when_done"]
