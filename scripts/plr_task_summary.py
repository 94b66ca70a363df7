"""Snakemake entry point of rule plr_task_summary: the PLR table -> the cross-task summary."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("report.tasks", snakemake)  # noqa: F821 - injected by Snakemake
