"""Snakemake entry point of rule quantize: one llamacpp model's GGUF at its quantisation type."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("engines.gguf", snakemake)  # noqa: F821 - injected by Snakemake
