"""Snakemake entry point of rule explain: one LLM explains every example of a dataset (one engine start)."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("explanations.generate", snakemake)  # noqa: F821 - injected by Snakemake
