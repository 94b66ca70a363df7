# Study 1, part 1: an LLM writes a natural-language explanation for each example,
# zero-shot or with k demonstrations (fixed for the dataset, or drawn per example from the
# train split of the example's own fold; never from its test fold).
# One job per dataset x explainer x shots x seed: the engine starts once and explains every
# example of the dataset (the folds all read this one file), chunked and resumable. A file
# explainer (backend: file) reads its explanations from its file instead (model: that file).


rule explain:
    input:
        examples=lambda wc: examples_file(wc.dataset),
        template=explain_template,
        model=explainer_files,
    output:
        explanations=PATHS["explanations"],
    params:
        model=lambda wc: model_params(wc.model),
        dataset=lambda wc: dataset_params(wc.dataset),
        settings=settings("explain"),
    log:
        "logs/explain/{dataset}/{model}/{shots}shot/seed{seed}.log",
    benchmark:
        "benchmarks/results/explain/{dataset}/{model}/{shots}shot/seed{seed}.tsv"
    threads: lambda wc: generation_threads(wc.model)
    resources:
        gpu=lambda wc: model_gpus(wc.model),
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/engines.yaml"
    script:
        "../../scripts/explain.py"
