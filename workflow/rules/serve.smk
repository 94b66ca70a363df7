# One engine start per (model, dataset): a model with `serve: true` (backend vllm) is served by
# one `vllm serve` per dataset, and every zero-shot and G-Eval job of that model and dataset
# (each condition, explainer and fold) asks it instead of loading the model. The service file is
# their input, so Snakemake runs them as one group beside the server and stops the server when
# the last of them is done; each keeps its own outputs and cache. See explainbench.engines.serve.

# Between runs each served model's service file says {"state": "stopped"}, so that Snakemake
# re-runs no consumer because the server runs for another (explainbench.engines.serve).
for _model in (m for m in MODELS if served(m)):
    for _dataset in DATASETS:
        ensure_placeholder(path("engine_service", model=_model, dataset=_dataset))


rule serve_llm:
    input:
        model=lambda wc: model_files(wc.model),
    output:
        service=service(PATHS["engine_service"]),
    params:
        spec=lambda wc: json.dumps(MODELS[wc.model]),
        python=PYTHON,
    log:
        "logs/serve_llm/{dataset}/{model}.log",
    benchmark:
        "benchmarks/results/serve_llm/{dataset}/{model}.tsv"
    threads: 2
    resources:
        gpu=lambda wc: model_gpus(wc.model),
        mem_mb=8000,
        runtime=30,
    conda:
        "../../envs/engines.yaml"
    shell:  # the service file at once (its consumers start now, and wait for "ready" in it); exec: the
        # server's supervisor is the job's process, so Snakemake's terminate stops it
        "echo '{{\"state\": \"starting\"}}' > {output.service:q} && exec {params.python} -m explainbench.engines.serve "
        "{output.service:q} --name {wildcards.model} --spec {params.spec:q} > {log:q} 2>&1"
