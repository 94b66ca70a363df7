"""Snakemake entry point of rule plr_curve: the PLR learning curve over examples per class."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("plr.curve", snakemake)  # noqa: F821 - injected by Snakemake
