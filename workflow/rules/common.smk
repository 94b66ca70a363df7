# Config-derived lists, path templates and input functions. Rules hold no logic beyond calls
# to these; every result path is declared once, in PATHS, for outputs and targets alike.
import json
import re
import sys

from snakemake.settings.types import DeploymentMethod

from explainbench.config import QUANT_TYPES, explanation_source, is_file_explainer, result_keys
from explainbench.data import official_fold_files
from explainbench.engines.gguf import QUANTIZED_GGUF, QUANTIZED_INFO
from explainbench.engines.serve import SERVICE_FILE, ensure_placeholder, service_file
from explainbench.prompts import dataset_template_path
from explainbench.provenance import config_hash
from explainbench.splits import check_changed_data
from explainbench.workflow import (
    demo_data_names,
    demo_model_names,
    demonstration_count,
    embed_params,
    explained_plr_models as explained_models,
    fold_list,
    parse_condition,
    quantized_models,
    rule_params,
    shots_for,
    stage_conditions,
)

CONFIG_HASH = config_hash(config)  # names the config of every report table row

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
DATASETS = config["datasets"]
MODELS = config["models"]
QUANTIZATION = "|".join(QUANT_TYPES)  # llama.cpp's types (rule quantize)
DEMO_DATA_FILES = {f"resources/demo/{name}.jsonl" for name in demo_data_names()}


wildcard_constraints:
    dataset=NAME,
    model=NAME,
    shots=r"\d+",
    seed=r"\d+",
    fold=r"\d+",
    condition=r"none|human|llm-[A-Za-z0-9][A-Za-z0-9._-]*-\d+shot(-masked)?",
    demo_data="|".join(demo_data_names()),
    demo_model="|".join(re.escape(n) for n in demo_model_names()),


# ----------------------------------------------------------------------------- result paths
# The cache key of every result is its path: stage / dataset / fold / model / shots or condition / seed.
# Explanations are written once per dataset (every example, whatever fold reads it); the
# stages that test on a fold (quality, finetune, zeroshot) have the fold in their path, so
# each fold is its own job. Without cross-validation there is one fold, fold0.
PATHS = {
    "examples": "results/data/{dataset}/examples.jsonl",
    "sample": "results/data/{dataset}/sample.csv",
    "split_summary": "results/data/{dataset}/summary.json",
    "explanations": "results/explanations/{dataset}/{model}/{shots}shot/seed{seed}/explanations.jsonl",
    "quality_per_example": "results/quality/{dataset}/fold{fold}/{model}/{shots}shot/seed{seed}/per_example.csv",
    "quality_corpus": "results/quality/{dataset}/fold{fold}/{model}/{shots}shot/seed{seed}/corpus.csv",
    "finetune_metrics": "results/finetune/{dataset}/fold{fold}/{model}/{condition}/seed{seed}/metrics.json",
    "finetune_predictions": "results/finetune/{dataset}/fold{fold}/{model}/{condition}/seed{seed}/predictions.csv",
    "zeroshot_metrics": "results/zeroshot/{dataset}/fold{fold}/{model}/{condition}/metrics.json",
    "zeroshot_predictions": "results/zeroshot/{dataset}/fold{fold}/{model}/{condition}/predictions.csv",
    "embeddings": "results/embeddings/{dataset}/{model}/embeddings.npz",
    "plr_curve": "results/plr/{dataset}/{model}/curve.csv",
    "plr_phrases": "results/plr/{dataset}/{model}/phrases.csv",
    "plr_stability": "results/plr/{dataset}/{model}/stability.csv",
    "quantized_gguf": QUANTIZED_GGUF,  # results/models/{model}/{quantization}.gguf (backend llamacpp)
    "quantized_info": QUANTIZED_INFO,
    "generation_speed": "results/speed/{dataset}/speed.csv",
    "engine_service": SERVICE_FILE,  # results/engines/{dataset}/{model}.service.json (rule serve_llm)
    "table": "results/tables/{table}.{ext}",
    "plot": "results/plots/{plot}.{ext}",
}


def path(name, **values):
    """PATHS[name] with the given wildcards filled in and the others left as wildcards."""
    template = PATHS[name]
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


def table(name, ext):
    return path("table", table=name, ext=ext)


# ----------------------------------------------------------------------------- params
def model_params(name):
    """What of a model's entry changes its results (runtime-only keys left out, keys sorted)."""
    return result_keys(MODELS[name], "models.*") if name else None


def dataset_params(name):
    return result_keys(DATASETS[name], "datasets.*")


def settings(rule):
    """The config settings a rule's jobs read that change their results (explainbench.workflow.SETTINGS)."""
    return rule_params(config, rule)


# ----------------------------------------------------------------------------- lookups
def model_files(name):
    """A model's local folder is an input (so the demo models get built); hub ids are not. A file
    explainer's input is its file (explainer_files). A llamacpp model with a quantization: its
    quantised GGUF (so rule quantize makes it first)."""
    if is_file_explainer(MODELS[name]):
        return []
    model_path = MODELS[name]["path"]
    if MODELS[name]["backend"] == "llamacpp" and MODELS[name]["quantization"]:
        return [path("quantized_gguf", model=name, quantization=MODELS[name]["quantization"].lower())]
    if model_path.startswith("resources/models/") or os.path.exists(model_path):
        return [model_path]
    return []


def explainer_files(wc):
    """What rule explain reads besides the examples: an engine's model folder, or a file
    explainer's file of this dataset and shots (or the official per-fold test files it stands for)."""
    if not is_file_explainer(MODELS[wc.model]):
        return model_files(wc.model)
    source = explanation_source(MODELS[wc.model], wc.model, wc.dataset, wc.shots)[0]
    return [str(source)] if source.exists() else [str(p) for p in official_fold_files(source)] or [str(source)]


def explain_template(wc):
    """The explain prompt, for engines (a file explainer writes no prompt)."""
    return [] if is_file_explainer(MODELS[wc.model]) else prompt_file(wc.dataset, "explain")


def gguf_source_files(name):
    """Rule quantize's input: the model's own GGUF file when it is local (a hub file is downloaded)."""
    model_path = MODELS[name]["path"]
    return [model_path] if os.path.isfile(model_path) else []


def quality_model(role):
    """The model name config `quality` gives a role (judge, bertscore, mauve), or None."""
    q = config["quality"]
    return q["judge"] if role == "judge" else q[role]["model"]


def quality_model_files(role):
    name = quality_model(role)
    return model_files(name) if name else []


def dataset_file(name):
    """A dataset's local file, an input of prepare_data: a file the pipeline writes (the demo data)
    by its mtime; the user's own by its content (ancient: its mtime is ignored, and
    dataset_content makes the SHA-256 of its bytes a param instead)."""
    spec = DATASETS[name]
    if spec["format"] == "hub":
        return []
    if spec["path"] in DEMO_DATA_FILES:
        return [spec["path"]]
    return [ancient(spec["path"])] if os.path.exists(spec["path"]) else []


def dataset_content(name):
    """prepare_data's param: the SHA-256 of a user's data file, so that new bytes re-run the splits
    and an identical copy with a new mtime re-runs nothing; data changed since the splits were
    written is checked now, before Snakemake deletes them (explainbench.splits.check_changed_data)."""
    if DATASETS[name]["path"] in DEMO_DATA_FILES:
        return None
    return check_changed_data(DATASETS[name], name, path("split_summary", dataset=name))


def examples_file(dataset):
    return path("examples", dataset=dataset)


def demonstrations(wc):
    """Fixed demonstrations the data stage reserves for a dataset (0: none): a param of prepare_data."""
    return demonstration_count(config, wc.dataset)


# the Python that runs explainbench in a shell rule: the conda env's with --use-conda, else Snakemake's
PYTHON = "python" if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method else sys.executable


def served(name):
    """Whether a model's zero-shot and G-Eval jobs ask one rule-serve_llm server (models.<name>.serve)."""
    return bool(name) and MODELS[name]["serve"]


def engine_service(name, dataset):
    """The service file of the server of model ``name`` for ``dataset``, for a served model; else
    nothing. Ancient (and never missing, see rule serve_llm): a server started for one job
    re-runs none of the others."""
    service = service_file(config, name, dataset)
    return [ancient(service)] if service else []


def engine_mem_mb(name, mem_mb=8000, served_mb=1000):
    """Memory a job asks for: ``served_mb`` when it only asks a served model's server (a group's
    jobs run at once, so SLURM is asked for their sum), else ``mem_mb``."""
    return served_mb if served(name) else mem_mb


def engine_threads(name, threads=2):
    """A job that asks a served model's server computes nothing itself (0 threads: Snakemake runs
    a group's jobs beside the server, and the server holds the cores); others get ``threads``."""
    return 0 if served(name) else threads


def generation_threads(name):
    """Cores a job that runs model ``name`` in its own engine asks for: one per GPU it holds, plus
    one for vLLM's scheduler. On CPU that is one: vLLM's generation there kept one core busy with
    two threads (the default run), so another job runs beside it (--set-threads explain=N)."""
    return model_gpus(name) + 1


def model_gpus(name):
    """GPUs a model's jobs ask for: its tensor-parallel size on GPU clusters, none on CPU."""
    gpus = config["slurm"]["gpu_rules_use_gpus"] and not is_file_explainer(MODELS[name])
    return MODELS[name]["tensor_parallel_size"] if gpus else 0


def prompt_file(dataset, stage):
    """The prompt template a stage uses for a dataset (an input, so editing it re-runs the stage)."""
    return str(dataset_template_path(config["prompts_dir"], stage, dataset, DATASETS[dataset]))


def embed_template(wc):
    """The embed prompt, for the models that wrap texts in it (causal LMs; encoders if asked)."""
    if MODELS[wc.model]["kind"] == "causal" or config["plr"]["wrap_encoder_texts"]:
        return prompt_file(wc.dataset, "embed")
    return []


def explanation_file(dataset, condition):
    """The explanation file a condition reads (llm conditions only): the first explain seed's."""
    model, shots = parse_condition(condition)
    return path("explanations", dataset=dataset, model=model, shots=shots, seed=config["explain"]["seeds"][0])


def condition_inputs(wc):
    if wc.condition in ("none", "human"):
        return []
    return [explanation_file(wc.dataset, wc.condition)]


# ----------------------------------------------------------------------------- targets
def explanation_targets():
    e = config["explain"]
    return [path("quality_corpus", dataset=d, fold=k, model=m, shots=n, seed=s)
            for d in e["datasets"] for k in fold_list(config, d) for m in e["explainers"]
            for n in shots_for(config, d) for s in e["seeds"]]


def finetune_targets(kind="metrics"):
    f = config["finetune"]
    return [path(f"finetune_{kind}", dataset=d, fold=k, model=m, condition=c, seed=s)
            for d in f["datasets"] for k in fold_list(config, d) for m in f["encoders"]
            for c in stage_conditions(config, "finetune", d) for s in f["seeds"]]


def zeroshot_targets(kind="metrics"):
    z = config["zeroshot"]
    return [path(f"zeroshot_{kind}", dataset=d, fold=k, model=m, condition=c)
            for d in z["datasets"] for k in fold_list(config, d) for m in z["classifiers"]
            for c in stage_conditions(config, "zeroshot", d)]


def plr_zeroshot_models():
    """LLMs whose zero-shot accuracy is drawn against a PLR curve."""
    p = config["plr"]
    own = [m for m in p["models"] if MODELS[m]["kind"] == "causal"]
    return list(dict.fromkeys(own + p["zeroshot_models"]))


def explained_plr_models():
    """The PLR models whose PLR is explained (plr.explain_models; null: all plr.models)."""
    return explained_models(config)


def plr_targets(kind):
    """Every PLR dataset x model's curve, or every dataset x explained model's phrases / stability."""
    p = config["plr"]
    return expand(PATHS[f"plr_{kind}"], dataset=p["datasets"],
                  model=p["models"] if kind == "curve" else explained_plr_models())


def plr_zeroshot_targets():
    """The zero-shot baselines of Study 2: fold 0 (Study 2 is not cross-validated), condition none."""
    return expand(path("zeroshot_metrics", condition="none", fold=0), dataset=config["plr"]["datasets"],
                  model=plr_zeroshot_models())


def plot_targets():
    """Learning curves per PLR dataset, classification per classified dataset, a heat map per explainer
    and, with several explainers, one per explained dataset that holds them all."""
    e, p, f, z = (config[k] for k in ("explain", "plr", "finetune", "zeroshot"))
    classified = [d for d in f["datasets"] if f["encoders"]] + [d for d in z["datasets"] if z["classifiers"]]
    names = ([f"learning_curves_{d}" for d in p["datasets"] if p["models"]]
             + [f"stability_{d}" for d in p["datasets"] if explained_plr_models()]
             + [f"classification_{d}" for d in dict.fromkeys(classified)]
             + [f"quality_heatmap_{m}" for m in e["explainers"] if e["datasets"]]
             + [f"quality_overview_{d}" for d in e["datasets"] if len(e["explainers"]) > 1])
    return expand(PATHS["plot"], plot=names, ext=["png", "svg"])


def quantized_plr_models():
    """The PLR models that are llama.cpp files at a quantisation (the quantisation table's rows)."""
    return quantized_models(config)


def quantized_info_targets(wc=None):
    return [path("quantized_info", model=m, quantization=MODELS[m]["quantization"].lower())
            for m in quantized_plr_models()]


def quantization_targets():
    """The quantisation table, when plr.models holds a quantised llamacpp model (else nothing)."""
    return [table("quantization", "csv")] if quantized_plr_models() and config["plr"]["datasets"] else []


def task_summary_targets():
    """The cross-task summary of Study 2, when it has PLR curves."""
    p = config["plr"]
    return [table("plr_tasks", "csv")] if p["datasets"] and p["models"] else []


def all_targets():
    return ([table(t, "csv") for t in ("explanation_quality", "classification", "plr_learning_curves")] + plot_targets()
            + task_summary_targets() + quantization_targets())
