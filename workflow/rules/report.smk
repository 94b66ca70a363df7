# Results people can read: tidy tables (CSV + Markdown) and plots for both studies.


rule quality_table:
    input:
        corpus=explanation_targets(),
    output:
        csv=report("results/tables/explanation_quality.csv", caption="../report/explanation_quality.rst", category="Study 1: explanations"),
        md="results/tables/explanation_quality.md",
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
    output:
        csv=report("results/tables/classification.csv", caption="../report/classification.rst", category="Study 1: classification"),
        md="results/tables/classification.md",
    params:
        bootstrap=config["report"]["bootstrap"],
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
        csv=report("results/tables/plr_learning_curves.csv", caption="../report/plr.rst", category="Study 2: PLR"),
        md="results/tables/plr_learning_curves.md",
    log:
        "logs/report/plr_table.log",
    benchmark:
        "benchmarks/results/report/plr_table.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/plr_table.py"
