"""Snakemake entry point of rule quantization_table: size, types, PLR and zero-shot accuracy, speed."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("report.quantization", snakemake)  # noqa: F821 - injected by Snakemake
