"""Snakemake entry point of rule generation_speed: tokens/s of every quantised PLR model, same prompts."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("plr.speed", snakemake)  # noqa: F821 - injected by Snakemake
