"""Snakemake entry point of rule zeroshot: an LLM classifies one dataset's test split zero-shot for one condition."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("classify.zeroshot", snakemake)  # noqa: F821 - injected by Snakemake
