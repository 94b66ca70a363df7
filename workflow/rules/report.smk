# Results people can read: tidy tables (CSV + Markdown + HTML) and plots for both studies,
# assembled with captions by `snakemake --report results/report.html`.
# Every table row names its source run: CONFIG_HASH and MODEL_PATHS (common.smk), seed, file.

report: "../report/workflow.rst"

rule quality_table:
    input:
        corpus=explanation_targets(),
    output:
        csv=report("results/tables/explanation_quality.csv", caption="../report/explanation_quality.rst", category="Study 1 - explanations", labels={"item": "table: explanation quality", "format": "CSV"}),
        md="results/tables/explanation_quality.md",
        html=report("results/tables/explanation_quality.html", caption="../report/explanation_quality.rst", category="Study 1 - explanations", labels={"item": "table: explanation quality", "format": "HTML"}),
    params:
        config_hash=CONFIG_HASH,
        model_paths=MODEL_PATHS,
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
        predictions=predictions_of(finetune_targets() + zeroshot_targets()),
    output:
        csv=report("results/tables/classification.csv", caption="../report/classification.rst", category="Study 1 - classification", labels={"item": "table: classification by condition", "format": "CSV"}),
        md="results/tables/classification.md",
        html=report("results/tables/classification.html", caption="../report/classification.rst", category="Study 1 - classification", labels={"item": "table: classification by condition", "format": "HTML"}),
    params:
        bootstrap=config["report"]["bootstrap"],
        config_hash=CONFIG_HASH,
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
        curves=expand("results/plr/{dataset}/{model}/curve.csv", dataset=config["plr"]["datasets"], model=config["plr"]["models"]),
        phrases=expand("results/plr/{dataset}/{model}/phrases.csv", dataset=config["plr"]["datasets"], model=config["plr"]["models"]),
        zeroshot=[f"results/zeroshot/{d}/{m}/none/metrics.json" for d in config["plr"]["datasets"] for m in plr_zeroshot_models(d)],
    output:
        csv=report("results/tables/plr_learning_curves.csv", caption="../report/plr.rst", category="Study 2 - PLR", labels={"item": "table: PLR learning curves", "format": "CSV"}),
        md="results/tables/plr_learning_curves.md",
        html=report("results/tables/plr_learning_curves.html", caption="../report/plr.rst", category="Study 2 - PLR", labels={"item": "table: PLR learning curves", "format": "HTML"}),
    params:
        config_hash=CONFIG_HASH,
        model_paths=MODEL_PATHS,
        seed=config["plr"]["seed"],
        top_phrases=config["report"]["top_phrases"],
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
        table="results/tables/plr_learning_curves.csv",
    output:
        png=report("results/plots/learning_curves_{dataset}.png", caption="../report/learning_curves.rst", category="Study 2 - PLR", labels={"item": "figure: learning curves, {dataset}", "format": "PNG"}),
        svg="results/plots/learning_curves_{dataset}.svg",
    log:
        "logs/report/plot_learning_curves/{dataset}.log",
    benchmark:
        "benchmarks/results/report/plot_learning_curves/{dataset}.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/plot_learning_curves.py"


rule plot_classification:
    input:
        table="results/tables/classification.csv",
    output:
        png=report("results/plots/classification_{dataset}.png", caption="../report/classification_plot.rst", category="Study 1 - classification", labels={"item": "figure: classification by condition, {dataset}", "format": "PNG"}),
        svg="results/plots/classification_{dataset}.svg",
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
        table="results/tables/explanation_quality.csv",
    output:
        png=report("results/plots/quality_heatmap_{model}.png", caption="../report/quality_heatmap.rst", category="Study 1 - explanations", labels={"item": "figure: explanation quality, {model}", "format": "PNG"}),
        svg="results/plots/quality_heatmap_{model}.svg",
    log:
        "logs/report/plot_quality_heatmap/{model}.log",
    benchmark:
        "benchmarks/results/report/plot_quality_heatmap/{model}.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/plot_quality_heatmap.py"
