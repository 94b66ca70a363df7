# llama.cpp models at the quantisation their entry asks for (models.<name>.quantization with
# backend llamacpp): one GGUF per model x type, made from the model's own GGUF by llama.cpp's
# quantizer, with a JSON of the tensor types the file actually got. The stages that run the
# model take the file as an input (model_files), so it is made once, before them.


rule quantize:
    input:
        source=lambda wc: gguf_source_files(wc.model),
    output:
        gguf=PATHS["quantized_gguf"],
        info=PATHS["quantized_info"],
    params:
        model=lambda wc: model_params(wc.model),
    log:
        "logs/quantize/{model}/{quantization}.log",
    benchmark:
        "benchmarks/results/quantize/{model}/{quantization}.tsv"
    wildcard_constraints:
        quantization=QUANTIZATION,
    threads: 2
    resources:
        mem_mb=16000,
        runtime=60,
    conda:
        "../../envs/engines.yaml"
    script:
        "../../scripts/quantize.py"


# What quantisation costs and buys (Study 2): rule generation_speed times every quantised PLR
# model in one job on the same prompts; rule quantization_table joins that with the files' sizes
# and types, the PLR curves and the zero-shot accuracies. Run only when plr.models holds a
# llamacpp model with a quantization (quantization_targets in common.smk).


rule generation_speed:
    input:
        examples=lambda wc: examples_file(wc.dataset),
        template=lambda wc: prompt_file(wc.dataset, "embed"),
        models=lambda wc: [f for m in quantized_plr_models() for f in model_files(m)],
    output:
        speed=PATHS["generation_speed"],
    params:
        models=lambda wc: {m: model_params(m) for m in quantized_plr_models()},
        dataset=lambda wc: dataset_params(wc.dataset),
        settings=settings("generation_speed"),
    log:
        "logs/generation_speed/{dataset}.log",
    benchmark:
        "benchmarks/results/generation_speed/{dataset}.tsv"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=60,
    conda:
        "../../envs/engines.yaml"
    script:
        "../../scripts/generation_speed.py"


localrules:
    quantization_table,  # a table from small files, like the report's (report.smk)


rule quantization_table:
    input:
        info=quantized_info_targets,
        curves=lambda wc: expand(PATHS["plr_curve"], dataset=config["plr"]["datasets"], model=quantized_plr_models()),
        zeroshot=lambda wc: expand(path("zeroshot_metrics", condition="none", fold=0), dataset=config["plr"]["datasets"], model=quantized_plr_models()),
        speed=lambda wc: expand(PATHS["generation_speed"], dataset=config["plr"]["datasets"]),
    output:
        csv=report(table("quantization", "csv"), caption="../report/quantization.rst", category="Study 2 - PLR", labels={"item": "table: quantisation", "format": "CSV"}),
        md=table("quantization", "md"),
        html=report(table("quantization", "html"), caption="../report/quantization.rst", category="Study 2 - PLR", labels={"item": "table: quantisation", "format": "HTML"}),
    params:
        config_hash=CONFIG_HASH,
        settings=settings("quantization_table"),
    log:
        "logs/report/quantization_table.log",
    benchmark:
        "benchmarks/results/report/quantization_table.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/quantization_table.py"
