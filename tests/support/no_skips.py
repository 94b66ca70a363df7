"""A pytest plugin for CI: with EXPLAINBENCH_NO_SKIPS=1 a skipped test fails, naming its reason.

The engines-and-data issue asks that CI run every test, none skipped for lack of data, engines or a
scheduler. Locally a missing ../shared/data or vLLM still skips; `.ci/run` sets the variable, so
there the same skip is a failure with the reason in its report. Deselection (`-m "not acceptance"`)
is not a skip and is unaffected.
"""
from __future__ import annotations

import os

import pytest

VARIABLE = "EXPLAINBENCH_NO_SKIPS"


def skips_forbidden(environ=os.environ) -> bool:
    return environ.get(VARIABLE, "") not in ("", "0")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and skips_forbidden() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} was skipped, and {VARIABLE}=1 forbids skips: {reason}"
    return report
