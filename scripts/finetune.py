"""Snakemake entry point of rule finetune: fine-tune one encoder for one explanation condition and seed."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("classify.finetune", snakemake)  # noqa: F821 - injected by Snakemake
