"""Parameter-efficient fine-tuning: LoRA adapters on a transformer's attention and feed-forward layers (peft).

    model = with_lora(model, rank=16)          # only the adapters (and any head) train
    ... train ...
    model = merged(model)                      # plain weights again: saved, exported to ONNX like any model

Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", 2021.  The adapters are merged back into the
weights before saving, so a LoRA-trained model loads, exports and serves exactly like a fully fine-tuned one.

Against full fine-tuning, same data and recipe (SciFact train, dev = 81 held-out train queries; one H100,
``scripts/train_prepared.py``; rank 16 on every target above):

    ==========================================  =================  =================  ===============
    model (dev nDCG@10; first stage / base)     full, lr as shown  LoRA, same lr      LoRA, lr x5/x10
    ==========================================  =================  =================  ===============
    reranker, 1500 steps (BM25 top 20: 0.671)   0.757 (1e-4)       0.718              0.739 (5e-4)
    dense, 3 epochs (base 0.665)                0.702 (2e-5)       0.666              0.698 (2e-4)
    ==========================================  =================  =================  ===============

LoRA needs a learning rate 5-10x the full one and then gets within 0.004-0.018 of full fine-tuning; at the
full run's rate the dense adapters barely move (0.666 against the base's 0.665).  Its gain is memory and the
size of what changes, not quality: on these small models full fine-tuning is the default.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BERT_TARGETS", "merged", "with_lora"]

# BERT's linear layers by their module names: self-attention and the feed-forward block
BERT_TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")


def with_lora(
    model: Any,
    *,
    rank: int = 16,
    alpha: int = 32,
    dropout: float = 0.1,
    targets: tuple[str, ...] = BERT_TARGETS,
    trainable: tuple[str, ...] = (),
) -> Any:
    """``model`` with LoRA adapters on ``targets``; every other weight is frozen except the modules named in
    ``trainable`` (a freshly initialised head must train in full)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(targets),
        modules_to_save=list(trainable) or None,
    )
    return get_peft_model(model, config)


def merged(model: Any) -> Any:
    """The plain model with the adapters added into its weights (a model without them comes back as is)."""
    merge = getattr(model, "merge_and_unload", None)
    return merge() if merge is not None else model
