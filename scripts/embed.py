"""Snakemake entry point of rule embed: prompt-wrapped embeddings of one dataset by one model."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("plr.embed", snakemake)  # noqa: F821 - injected by Snakemake
