"""Snakemake entry point for rule plr_table: curve.csv of every dataset x model, the LLMs'
zero-shot metrics.json and the PLR phrases -> PLR learning-curve table."""
from explainbench.report import plr_table, top_phrases, write_plr
from explainbench.workflow import script_logging

with script_logging(snakemake.log[0]) as log:
    table = plr_table(snakemake.input.curves, snakemake.input.zeroshot, config_hash=snakemake.params.config_hash,
                      model_paths=snakemake.params.model_paths, seed=snakemake.params.seed)
    phrases = top_phrases(snakemake.input.phrases, top=snakemake.params.top_phrases)
    write_plr(table, snakemake.output.csv, snakemake.output.md, snakemake.output.html, phrases=phrases)
    log.info("PLR: %d rows from %d curves -> %s", len(table), len(snakemake.input.curves), snakemake.output.csv)
