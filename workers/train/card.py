"""What a trained model folder says about itself: ``training.json`` for machines, ``README.md`` for people.

    write_model_card(out, kind="reranker", base="all-MiniLM-L6-v2", data=data, settings={...},
                     metrics={"dev ndcg@10": 0.71}, seconds=812.4, command="nirbridge train ...")

The card names the data (collection, splits, query counts, how candidates were mined), the starting
checkpoint, every training setting, the dev metrics, the wall time and the machine, and the licences: the
weights derive from the base model (all-MiniLM-L6-v2: Apache-2.0) and were fitted on the collection's
judgments, whose licence (SciFact: CC BY-NC 2.0, NFCorpus: CC BY-SA 4.0) the user must respect.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .data import TrainingData

__all__ = ["write_model_card"]

_DATA_LICENCES = {"scifact": "CC BY-NC 2.0 (AllenAI)", "nfcorpus": "CC BY-SA 4.0"}


def _machine() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (CUDA)"
    except ImportError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def write_model_card(
    out: Path,
    *,
    kind: str,
    base: str,
    data: TrainingData,
    settings: Mapping[str, Any],
    metrics: Mapping[str, float],
    seconds: float,
    command: str = "",
    notes: str = "",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``training.json`` and ``README.md`` into ``out`` (beside the saved model); return the JSON.

    ``extra`` holds what a trainer records beyond the common fields (best epoch, steps, samples...): it goes
    into ``training.json`` only."""
    dataset = str(data.source.get("dataset", ""))
    record: dict[str, Any] = {
        "kind": kind,
        "base": base,
        "data": dict(data.source),
        "settings": dict(settings),
        "metrics": {name: round(float(value), 4) for name, value in metrics.items()},
        "seconds": round(seconds, 1),
        "machine": _machine(),
        "trained": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        **(extra or {}),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "training.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    lines = [
        f"# nirbridge {kind}: {out.name}",
        "",
        f"Fine-tuned from `{base}` by `nirbridge train {kind}` on {dataset or 'a BEIR collection'}.",
        "",
        "## Data",
        *(f"- {name}: {value}" for name, value in data.source.items()),
        "",
        "## Training",
        *(f"- {name}: {value}" for name, value in settings.items()),
        f"- wall time: {seconds / 60:.1f} min on {record['machine']}",
        "",
        "## Dev metrics",
        *(f"- {name}: {value:.4f}" for name, value in record["metrics"].items()),
        "",
        "## Licence and provenance",
        f"- weights derived from `{base}` (all-MiniLM-L6-v2 and splade-tiny are Apache-2.0)",
        f"- fitted on {dataset} judgments: {_DATA_LICENCES.get(dataset, 'see the collection licence')}",
        "",
        "## Reproduce",
        f"    {command}" if command else "    (see training.json)",
    ]
    if notes:
        lines += ["", "## Notes", notes]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    return record
