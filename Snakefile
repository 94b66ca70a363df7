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

from explainbench.config import check_config_files, validate_config_files  # noqa: E402

# Snakemake's reader keeps the last of two equal keys and names no line: read the files again
# strictly (a syntax error or a key defined twice names the file and line).
CONFIG_FILES = workflow.overwrite_configfiles or ["config/config.yaml"]
check_config_files(CONFIG_FILES)

# The default config, unless --configfile names another: then that file alone is the config
# (Snakemake would otherwise merge it into the default's registries).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# In place: every rule and script sees the filled-in defaults. Also checks that model folders
# exist here (a typo is not a hub id); an error names each bad key's file and line.
config.update(validate_config_files(config, CONFIG_FILES))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/quality.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/zeroshot.smk"
include: "workflow/rules/plr.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/serve.smk"
include: "workflow/rules/report.smk"


localrules:
    all,


rule all:
    input:
        all_targets(),
    default_target: True


include: "workflow/rules/slurm.smk"  # last: applies config slurm.* to every rule above


onerror:
    from explainbench.workflow import failure_summary

    print(failure_summary(log if isinstance(log, (list, tuple)) else [log]), file=sys.stderr)
