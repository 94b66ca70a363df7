# Study 1, part 2a: fine-tune encoder PLMs on premise + hypothesis (+ explanation), for the
# conditions none / human / llm-<explainer>-<k>shot, several seeds. The same explanation
# source is used for train, dev and test.


rule finetune:
    input:
        train=lambda wc: split_file(wc.dataset, "train"),
        dev=lambda wc: split_file(wc.dataset, "dev"),
        test=lambda wc: split_file(wc.dataset, "test"),
        explanations=lambda wc: condition_inputs(wc, ["train", "dev", "test"]),
        model=lambda wc: model_files(wc.model),
    output:
        metrics=PATHS["finetune_metrics"],
        predictions=PATHS["finetune_predictions"],
    params:
        model=lambda wc: model_params(wc.model),
        dataset=lambda wc: dataset_params(wc.dataset),
        settings=settings("finetune"),
    log:
        "logs/finetune/{dataset}/{model}/{condition}/seed{seed}.log",
    benchmark:
        "benchmarks/results/finetune/{dataset}/{model}/{condition}/seed{seed}.tsv"
    threads: 2
    resources:
        gpu=1 if config["slurm"]["gpu_rules_use_gpus"] else 0,
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/engines.yaml"
    script:
        "../../scripts/finetune.py"
