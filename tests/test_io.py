"""The one writer: output files get the permissions the umask gives (not mkstemp's 0600)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_CHILD = textwrap.dedent("""
    import json, os, stat, sys
    from pathlib import Path
    import numpy as np
    out = Path(sys.argv[1])
    from explainbench.io import atomic_path, write_json, write_jsonl
    from explainbench.engines.checkpoint import Checkpoint
    write_json({"a": 1}, out / "results" / "metrics.json")
    write_jsonl([{"id": "x"}], out / "results" / "test.jsonl")
    with atomic_path(out / "results" / "model", directory=True) as tmp:
        (tmp / "config.json").write_text("{}")
    Checkpoint(out / "results" / "test.jsonl.partial").save(["k"], np.zeros((1, 2)))
    modes = {str(p.relative_to(out)): oct(stat.S_IMODE(p.stat().st_mode)) for p in sorted(out.rglob("*"))
             if p.name != "config.json"}
    print(json.dumps(modes))
""")


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750),
                                                        (0o002, 0o664, 0o775)])
def test_written_files_get_the_umasks_mode(tmp_path, umask, file_mode, dir_mode):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path)], env=env, capture_output=True, text=True,
                          preexec_fn=lambda: os.umask(umask), check=True)
    modes = json.loads(proc.stdout)
    assert modes["results/metrics.json"] == oct(file_mode)
    assert modes["results/test.jsonl"] == oct(file_mode)
    assert modes["results/test.jsonl.partial/calls-000000.npz"] == oct(file_mode)
    assert modes["results/model"] == oct(dir_mode)
    assert not [name for name in modes if ".tmp" in name or name.endswith(".partial") and "model" in name]
