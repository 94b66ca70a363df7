# SLURM: the config's slurm.partition and slurm.account go to every job (as the resources
# slurm_partition / slurm_account that snakemake-executor-plugin-slurm reads). A value already
# set for a rule (in the rule, by --set-resources or by --default-resources) is kept.
# Included last in the Snakefile, after every rule is defined. Ignored by non-SLURM executors.


def apply_slurm_config(rules, slurm):
    extra = {"slurm_partition": slurm["partition"], "slurm_account": slurm["account"]}
    for r in rules:
        for key, value in extra.items():
            if value and key not in r.resources:
                r.resources[key] = value


apply_slurm_config(workflow.rules, config["slurm"])
