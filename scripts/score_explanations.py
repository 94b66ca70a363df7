"""Snakemake entry point: score one run's explanations (BLEU, ROUGE, BERTScore, MAUVE, G-Eval)."""
from explainbench.quality import score_explanations, write_csv
from explainbench.workflow import script_logging

if __name__ == "__main__":  # the G-Eval judge may be a vLLM engine (spawned process)
    with script_logging(snakemake.log[0]) as log:
        wc, params = snakemake.wildcards, snakemake.params
        per_example, corpus = score_explanations(
            snakemake.input.explanations, snakemake.input.references, quality=params.quality,
            dataset=wc.dataset, explainer=wc.model, shots=int(wc.shots), seed=int(wc.seed),
            judge_spec=params.judge, bertscore_spec=params.bertscore, mauve_spec=params.mauve,
            prompts_dir=params.prompts, task=params.task, labels=params.labels)
        write_csv(per_example, snakemake.output.per_example)
        write_csv(corpus, snakemake.output.corpus)
        log.info("wrote %s\n%s", snakemake.output.corpus, corpus.to_string(index=False))
