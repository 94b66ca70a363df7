# Study 2: penalised logistic regression on frozen (prompt-wrapped) LLM embeddings.
# Texts are embedded once per dataset x model (one engine start): the splits and the occluded
# variants of the test texts that plr_explain explains. Learning curves and explanations load no model.
# Study 2 is not cross-validated: it reads fold 0's train and test.


rule embed:
    input:
        examples=lambda wc: examples_file(wc.dataset),
        template=embed_template,
        model=lambda wc: model_files(wc.model),
    output:
        embeddings=PATHS["embeddings"],
    params:
        model=lambda wc: model_params(wc.model),
        dataset=lambda wc: dataset_params(wc.dataset),
        settings=lambda wc: embed_params(config, wc.model),
    log:
        "logs/embed/{dataset}/{model}.log",
    benchmark:
        "benchmarks/results/embed/{dataset}/{model}.tsv"
    threads: 2
    resources:
        gpu=lambda wc: model_gpus(wc.model),
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/engines.yaml"
    script:
        "../../scripts/embed.py"


rule plr_curve:
    input:
        embeddings=PATHS["embeddings"],
        examples=lambda wc: examples_file(wc.dataset),
    output:
        curve=PATHS["plr_curve"],
    params:
        settings=settings("plr_curve"),
    log:
        "logs/plr_curve/{dataset}/{model}.log",
    benchmark:
        "benchmarks/results/plr_curve/{dataset}/{model}.tsv"
    threads: 1  # scikit-learn fits on a few hundred vectors: one core
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/plr_curve.py"


rule plr_explain:
    input:
        embeddings=PATHS["embeddings"],
        examples=lambda wc: examples_file(wc.dataset),
    output:
        phrases=PATHS["plr_phrases"],
        stability=PATHS["plr_stability"],
    params:
        settings=settings("plr_explain"),
    log:
        "logs/plr_explain/{dataset}/{model}.log",
    benchmark:
        "benchmarks/results/plr_explain/{dataset}/{model}.tsv"
    threads: 1  # scikit-learn fits on a few hundred vectors: one core
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/plr_explain.py"
