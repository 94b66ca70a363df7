# explainbench: do LLM-written explanations help classifiers (Dhaini et al. 2025), and is a
# small local LLM + penalised logistic regression on its embeddings as good as a large LLM
# (Buckmann & Hill 2024)? Thin entry point: config, schema validation, includes, rule all.
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
# Scripts run in their own interpreters (and conda envs, and SLURM jobs): they find the
# library through PYTHONPATH, whichever environment runs them.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)

from explainbench.config import validate_config  # noqa: E402

# The default config, unless --configfile names another: then that file alone is the config
# (Snakemake would otherwise merge it into the default's registries).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


config.update(validate_config(config))  # in place: every rule and script sees the filled-in defaults


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/quality.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/zeroshot.smk"
include: "workflow/rules/plr.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True


include: "workflow/rules/slurm.smk"  # last: applies config slurm.* to every rule above


onerror:
    from explainbench.workflow import failure_summary

    print(failure_summary(log if isinstance(log, (list, tuple)) else [log]), file=sys.stderr)
