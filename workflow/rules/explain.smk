# Study 1, part 1: an LLM writes a natural-language explanation for each example,
# zero-shot or with k demonstrations (drawn, seeded and label-balanced, from train).
# One job per dataset x explainer x shots x seed: the engine starts once and explains the
# train, dev and test splits (fine-tuning reads all three), each file chunked and resumable.


rule explain:
    input:
        test=lambda wc: split_file(wc.dataset, "test"),
        dev=lambda wc: split_file(wc.dataset, "dev"),
        train=lambda wc: split_file(wc.dataset, "train"),
        template=lambda wc: prompt_file(wc.dataset, "explain"),
        model=lambda wc: model_files(wc.model),
    output:
        test=path("explanations", split="test"),
        dev=path("explanations", split="dev"),
        train=path("explanations", split="train"),
    params:
        model=lambda wc: model_params(wc.model),
        dataset=lambda wc: dataset_params(wc.dataset),
        settings=settings("explain"),
    log:
        "logs/explain/{dataset}/{model}/{shots}shot/seed{seed}.log",
    benchmark:
        "benchmarks/results/explain/{dataset}/{model}/{shots}shot/seed{seed}.tsv"
    threads: 2
    resources:
        gpu=lambda wc: model_gpus(wc.model),
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/engines.yaml"
    script:
        "../../scripts/explain.py"
