"""Parameter-efficient fine-tuning: LoRA adapters on a transformer's attention and feed-forward layers (peft).

    model = with_lora(model, rank=16)          # only the adapters (and any head) train
    ... train ...
    model = merged(model)                      # plain weights again: saved, exported to ONNX like any model

Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", 2021.  The adapters are merged back into the
weights before saving, so a LoRA-trained model loads, exports and serves exactly like a fully fine-tuned one.
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
