"""The CI switch that turns a skipped test into a failure (tests/support/no_skips.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.no_skips import VARIABLE, skips_forbidden

TESTS = Path(__file__).resolve().parent

SAMPLE = '''
import pytest

def test_runs():
    assert 1 + 1 == 2

def test_needs_missing_data():
    pytest.skip("real data not found at /nowhere/dev.jsonl")

@pytest.fixture
def engine():
    pytest.importorskip("no_such_engine_module")

def test_needs_missing_engine(engine):
    pass
'''


def _run_pytest(tmp_path: Path, forbid: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    if forbid is not None:
        env[VARIABLE] = forbid
    env["PYTHONPATH"] = str(TESTS)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "support.no_skips", "-q", "-rA", "-p", "no:cacheprovider",
         str(tmp_path / "test_sample.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_skips_stay_skips_without_the_switch(tmp_path):
    run = _run_pytest(tmp_path, forbid=None)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 2 skipped" in run.stdout


def test_with_the_switch_a_skip_fails_and_names_its_reason(tmp_path):
    run = _run_pytest(tmp_path, forbid="1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 passed" in run.stdout and "skipped" not in run.stdout.splitlines()[-1]
    assert "real data not found at /nowhere/dev.jsonl" in run.stdout
    assert "no_such_engine_module" in run.stdout
    assert f"{VARIABLE}=1 forbids skips" in run.stdout


def test_the_switch_reads_the_variable():
    assert not skips_forbidden({})
    assert not skips_forbidden({VARIABLE: "0"})
    assert skips_forbidden({VARIABLE: "1"})


def test_ci_sets_the_switch():
    ci = (TESTS.parent / ".ci" / "run").read_text()
    assert f"export {VARIABLE}=1" in ci or f"{VARIABLE}=1 make test" in ci
