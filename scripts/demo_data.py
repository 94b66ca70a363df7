"""Snakemake entry point of rule demo_data: generate one template dataset (unit tests and demos)."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("demo:run_data", snakemake)  # noqa: F821 - injected by Snakemake
