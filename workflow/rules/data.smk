# Stage 0: data and models. Demo data and demo models are built here; every dataset is
# loaded, checked, sampled and placed in its folds once (examples.jsonl: every example with its
# test fold, dev folds and fixed-demonstration rank), and every later stage reads that file.


rule demo_data:
    output:
        data="resources/demo/{demo_data}.jsonl",
    log:
        "logs/demo_data/{demo_data}.log",
    benchmark:
        "benchmarks/results/demo_data/{demo_data}.tsv"
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/demo_data.py"


rule demo_model:
    output:
        model=directory("resources/models/{demo_model}"),
    log:
        "logs/demo_model/{demo_model}.log",
    benchmark:
        "benchmarks/results/demo_model/{demo_model}.tsv"
    resources:
        mem_mb=6000,
    conda:
        "../../envs/engines.yaml"
    script:
        "../../scripts/demo_model.py"


rule prepare_data:
    input:
        data=lambda wc: dataset_file(wc.dataset),
    output:
        examples=PATHS["examples"],
        sample=PATHS["sample"],
        summary=PATHS["split_summary"],
    params:
        dataset=lambda wc: dataset_params(wc.dataset),
        content=lambda wc: dataset_content(wc.dataset),
        demonstrations=demonstrations,
    log:
        "logs/prepare_data/{dataset}.log",
    benchmark:
        "benchmarks/results/prepare_data/{dataset}.tsv"
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/prepare_data.py"
