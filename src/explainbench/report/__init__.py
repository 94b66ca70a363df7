"""Tables people can read, with their findings, and plots, for both studies.

- ``quality``: explanation quality (rule ``quality_table``)
- ``classification``: classification by explanation condition (rule ``classification_table``)
- ``learning_curves``: PLR learning curves, explanation stability and top phrases (rule ``plr_table``)
- ``tasks``: the PLR across tasks, from the PLR table (rule ``plr_task_summary``)
- ``quantization``: size, accuracy and speed of quantised llama.cpp models (rule ``quantization_table``)
- ``render``: the CSV, Markdown and HTML writers shared by the three tables
- ``plots``: the figures, drawn from the tables (rules ``plot_*``)

The per-run files they read, and their checks, are in :mod:`explainbench.files`.
"""
