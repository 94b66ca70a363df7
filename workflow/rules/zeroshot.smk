# Study 1, part 2b (and the Study 2 baseline, fold 0): an LLM classifies each fold's test
# examples zero-shot, with no / human / LLM explanation in the prompt. The answer is read from
# the label tokens' log-probabilities. A served model (serve: true) is asked through its
# serve_llm server: one engine start for all conditions and folds of a dataset.


rule zeroshot:
    input:
        examples=lambda wc: examples_file(wc.dataset),
        explanations=condition_inputs,
        template=lambda wc: prompt_file(wc.dataset, "classify"),
        model=lambda wc: model_files(wc.model),
        service=lambda wc: engine_service(wc.model, wc.dataset),
    output:
        predictions=PATHS["zeroshot_predictions"],
        metrics=PATHS["zeroshot_metrics"],
    params:
        model=lambda wc: model_params(wc.model),
        dataset=lambda wc: dataset_params(wc.dataset),
        verbalizer=lambda wc: result_keys(config["zeroshot"]["verbalizers"].get(wc.dataset, {}), "verbalizer"),
        settings=settings("zeroshot"),
    log:
        "logs/zeroshot/{dataset}/fold{fold}/{model}/{condition}.log",
    benchmark:
        "benchmarks/results/zeroshot/{dataset}/fold{fold}/{model}/{condition}.tsv"
    threads: lambda wc: engine_threads(wc.model)
    resources:
        gpu=lambda wc: 0 if served(wc.model) else model_gpus(wc.model),
        mem_mb=lambda wc: engine_mem_mb(wc.model),
        runtime=120,
    conda:
        "../../envs/engines.yaml"
    script:
        "../../scripts/zeroshot.py"
