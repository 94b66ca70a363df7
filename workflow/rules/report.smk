# Results people can read: tidy tables (CSV + Markdown + HTML) and plots for both studies,
# assembled with captions by `snakemake --report results/report.html`.
# Every table row names its source run: CONFIG_HASH (common.smk), the model path, seed, file.

report: "../report/workflow.rst"

# Tables and plots read small result files and take seconds: on a cluster they run in the
# Snakemake process itself, not as sbatch jobs that wait in the queue (and re-read the workflow).
localrules:
    quality_table,
    classification_table,
    plr_table,
    plot_learning_curves,
    plr_task_summary,
    plot_stability,
    plot_classification,
    plot_quality_heatmap,
    plot_quality_overview,

rule quality_table:
    input:
        corpus=explanation_targets(),
    output:
        csv=report(table("explanation_quality", "csv"), caption="../report/explanation_quality.rst", category="Study 1 - explanations", labels={"item": "table: explanation quality", "format": "CSV"}),
        md=table("explanation_quality", "md"),
        html=report(table("explanation_quality", "html"), caption="../report/explanation_quality.rst", category="Study 1 - explanations", labels={"item": "table: explanation quality", "format": "HTML"}),
    params:
        config_hash=CONFIG_HASH,
        settings=settings("quality_table"),
    log:
        "logs/report/quality_table.log",
    benchmark:
        "benchmarks/results/report/quality_table.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/quality_table.py"


rule classification_table:
    input:
        finetune=finetune_targets(),
        zeroshot=zeroshot_targets(),
        predictions=finetune_targets("predictions") + zeroshot_targets("predictions"),
    output:
        csv=report(table("classification", "csv"), caption="../report/classification.rst", category="Study 1 - classification", labels={"item": "table: classification by condition", "format": "CSV"}),
        md=table("classification", "md"),
        html=report(table("classification", "html"), caption="../report/classification.rst", category="Study 1 - classification", labels={"item": "table: classification by condition", "format": "HTML"}),
    params:
        config_hash=CONFIG_HASH,
        settings=settings("classification_table"),
    log:
        "logs/report/classification_table.log",
    benchmark:
        "benchmarks/results/report/classification_table.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/classification_table.py"


rule plr_table:
    input:
        curves=plr_targets("curve"),
        phrases=plr_targets("phrases"),
        stability=plr_targets("stability"),
        zeroshot=plr_zeroshot_targets(),
    output:
        csv=report(table("plr_learning_curves", "csv"), caption="../report/plr.rst", category="Study 2 - PLR", labels={"item": "table: PLR learning curves", "format": "CSV"}),
        md=table("plr_learning_curves", "md"),
        html=report(table("plr_learning_curves", "html"), caption="../report/plr.rst", category="Study 2 - PLR", labels={"item": "table: PLR learning curves", "format": "HTML"}),
    params:
        config_hash=CONFIG_HASH,
        settings=settings("plr_table"),
    log:
        "logs/report/plr_table.log",
    benchmark:
        "benchmarks/results/report/plr_table.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/plr_table.py"


rule plot_learning_curves:
    input:
        table=table("plr_learning_curves", "csv"),
    output:
        png=report(path("plot", plot="learning_curves_{dataset}", ext="png"), caption="../report/learning_curves.rst", category="Study 2 - PLR", labels={"item": "figure: learning curves, {dataset}", "format": "PNG"}),
        svg=path("plot", plot="learning_curves_{dataset}", ext="svg"),
    log:
        "logs/report/plot_learning_curves/{dataset}.log",
    benchmark:
        "benchmarks/results/report/plot_learning_curves/{dataset}.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/plot_learning_curves.py"


rule plr_task_summary:
    input:
        table=table("plr_learning_curves", "csv"),
    output:
        csv=report(table("plr_tasks", "csv"), caption="../report/plr_tasks.rst", category="Study 2 - PLR", labels={"item": "table: PLR across tasks", "format": "CSV"}),
        md=table("plr_tasks", "md"),
        html=report(table("plr_tasks", "html"), caption="../report/plr_tasks.rst", category="Study 2 - PLR", labels={"item": "table: PLR across tasks", "format": "HTML"}),
    log:
        "logs/report/plr_task_summary.log",
    benchmark:
        "benchmarks/results/report/plr_task_summary.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/plr_task_summary.py"


rule plot_stability:
    input:
        table=table("plr_learning_curves", "csv"),
    output:
        png=report(path("plot", plot="stability_{dataset}", ext="png"), caption="../report/stability.rst", category="Study 2 - PLR", labels={"item": "figure: explanation stability, {dataset}", "format": "PNG"}),
        svg=path("plot", plot="stability_{dataset}", ext="svg"),
    log:
        "logs/report/plot_stability/{dataset}.log",
    benchmark:
        "benchmarks/results/report/plot_stability/{dataset}.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/plot_stability.py"


rule plot_classification:
    input:
        table=table("classification", "csv"),
    output:
        png=report(path("plot", plot="classification_{dataset}", ext="png"), caption="../report/classification_plot.rst", category="Study 1 - classification", labels={"item": "figure: classification by condition, {dataset}", "format": "PNG"}),
        svg=path("plot", plot="classification_{dataset}", ext="svg"),
    log:
        "logs/report/plot_classification/{dataset}.log",
    benchmark:
        "benchmarks/results/report/plot_classification/{dataset}.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/plot_classification.py"


rule plot_quality_heatmap:
    input:
        table=table("explanation_quality", "csv"),
    output:
        png=report(path("plot", plot="quality_heatmap_{model}", ext="png"), caption="../report/quality_heatmap.rst", category="Study 1 - explanations", labels={"item": "figure: explanation quality, {model}", "format": "PNG"}),
        svg=path("plot", plot="quality_heatmap_{model}", ext="svg"),
    log:
        "logs/report/plot_quality_heatmap/{model}.log",
    benchmark:
        "benchmarks/results/report/plot_quality_heatmap/{model}.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/plot_quality_heatmap.py"


rule plot_quality_overview:
    input:
        table=table("explanation_quality", "csv"),
    output:
        png=report(path("plot", plot="quality_overview_{dataset}", ext="png"), caption="../report/quality_overview.rst", category="Study 1 - explanations", labels={"item": "figure: explanation quality, {dataset}", "format": "PNG"}),
        svg=path("plot", plot="quality_overview_{dataset}", ext="svg"),
    log:
        "logs/report/plot_quality_overview/{dataset}.log",
    benchmark:
        "benchmarks/results/report/plot_quality_overview/{dataset}.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/plot_quality_overview.py"
