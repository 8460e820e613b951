"""`nirbridge train`: the models the bridge needs, learned offline from relevance judgments.

One module per model (``dense``, ``reranker``, ``deepct``, ``doc2query``), each a ``train_*`` function over a
:class:`~nirbridge.workers.train.data.TrainingData`; ``lora`` wraps a model for parameter-efficient
fine-tuning.
The command line (``connector/train_cli.py``) reads the BEIR folder, mines first-stage negatives from the
cluster and calls them.
"""
