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
