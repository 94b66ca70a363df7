"""Reading and writing files, atomically: the one place that writes a file or folder under its
final name. A killed job never leaves a half-written file behind, two writers of the same file
never share a temporary name, and new files get the permissions the umask gives (not 0600)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import DataError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """A fresh temporary path beside ``path``; when the block ends cleanly it replaces ``path``.

    The block writes the temporary path (a file, or with ``directory=True`` a folder); if it
    raises, the temporary is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    else:  # keep the real suffix last (numpy adds ".npz" to names without it)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _DIR_MODE if directory else _FILE_MODE)
        if directory:
            shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if directory else tmp.unlink(missing_ok=True)
        raise


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(obj: Any, path: str | Path) -> None:
    write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", path)


def write_jsonl(rows: Iterable[dict], path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_csv(frame, path: str | Path, float_format: str | None = None) -> None:
    """A pandas DataFrame as CSV, without its index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format)


def read_jsonl(path: str | Path) -> list[dict]:
    return [row for _, row in read_jsonl_objects(path)]


def decode_line(raw: bytes, path: str | Path, lineno: int) -> str:
    """One line of a UTF-8 file (a byte-order mark at the start of the file is dropped); a byte
    that is not UTF-8 raises DataError naming the file, the row and the column."""
    if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}, row {lineno}, column {err.start + 1}: byte 0x{raw[err.start]:02x} is not UTF-8 "
                        "text (save the file as UTF-8)") from None

def read_jsonl_objects(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSONL file; a line that is not a JSON
    object raises DataError naming the file and row."""
    rows = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = decode_line(raw, path, lineno)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}, row {lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}, row {lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append((lineno, row))
    return rows
