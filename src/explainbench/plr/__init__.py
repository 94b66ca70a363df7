"""Study 2: penalised logistic regression on frozen, prompt-wrapped LLM embeddings.

- ``embed``      rule embed: the texts wrapped in the embed prompt, embedded once per dataset x
                 model (the ``embeddings.npz`` contract lives in :mod:`explainbench.files`)
- ``classifier`` the estimator (:class:`PLRClassifier`) and the hash-seeded draws it is fitted on
- ``curve``      rule plr_curve: the learning curve, and the smallest n reaching a zero-shot accuracy
- ``occlusion``  rule plr_explain: phrase explanations by occlusion, and their stability over draws
"""
