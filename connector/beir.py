"""Read a dataset in the BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.

    dataset = BeirDataset.open("bench/sample")          # DatasetError when it is not a BEIR folder
    for doc in dataset.documents(): ...                 # streamed, ids kept as given
    queries = dataset.queries(); qrels = dataset.qrels("dev")

Every problem is a DatasetError that names the file, the line and what is wrong. Reading the corpus can
instead collect bad lines and go on (`errors=[]`), so that one broken document does not stop an ingest.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from .errors import DatasetError

__all__ = [
    "BeirDataset",
    "BeirDocument",
    "BeirQuery",
    "read_corpus",
    "read_qrels",
    "read_queries",
    "shipped_sample",
]


@dataclass(frozen=True)
class BeirDocument:
    """One corpus line: `_id`, `title` (may be empty) and `text`."""

    id: str
    title: str
    text: str

    def source(self) -> dict[str, str]:
        """The document as it is indexed (the id travels as `_id`, outside the source)."""
        return {"title": self.title, "text": self.text}


@dataclass(frozen=True)
class BeirQuery:
    """One queries.jsonl line: `_id` and `text`."""

    id: str
    text: str


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | DatasetError]]:
    """(line number, object or the error that line has), skipping blank lines."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise DatasetError(path, f"cannot open: {exc.strerror}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield number, DatasetError(path, f"not UTF-8 (byte {exc.start + 1})", number)
                continue
            except json.JSONDecodeError as exc:
                yield number, DatasetError(path, f"not JSON ({exc.msg} at column {exc.colno})", number)
                continue
            if not isinstance(value, dict):
                yield (
                    number,
                    DatasetError(path, f"expected a JSON object, got {type(value).__name__}", number),
                )
                continue
            yield number, value


def _text_field(path: Path, number: int, value: dict[str, Any], name: str, required: bool) -> str:
    field = value.get(name)
    if field is None:
        if required:
            raise DatasetError(path, f"no {name!r} field", number)
        return ""
    if not isinstance(field, str):
        raise DatasetError(path, f"{name!r} must be a string, got {type(field).__name__}", number)
    return field


def _id_field(path: Path, number: int, value: dict[str, Any]) -> str:
    doc_id = value.get("_id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        return str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise DatasetError(path, "no usable '_id' (a non-empty string)", number)
    return doc_id


def read_corpus(path: Path | str, errors: list[DatasetError] | None = None) -> Iterator[BeirDocument]:
    """Stream the documents of a corpus.jsonl.

    A bad line raises DatasetError, unless `errors` is a list: then the error is appended to it and reading
    goes on with the next line.
    """
    path = Path(path)
    for number, value in _json_lines(path):
        try:
            if isinstance(value, DatasetError):
                raise value
            doc_id = _id_field(path, number, value)
            yield BeirDocument(
                doc_id,
                _text_field(path, number, value, "title", required=False),
                _text_field(path, number, value, "text", required=True),
            )
        except DatasetError as error:
            if errors is None:
                raise
            errors.append(error)


def read_queries(path: Path | str) -> list[BeirQuery]:
    """All queries of a queries.jsonl, in file order."""
    path = Path(path)
    queries = []
    for number, value in _json_lines(path):
        if isinstance(value, DatasetError):
            raise value
        queries.append(
            BeirQuery(_id_field(path, number, value), _text_field(path, number, value, "text", True))
        )
    return queries


def read_qrels(path: Path | str) -> dict[str, dict[str, int]]:
    """query id → {doc id: grade} from a qrels TSV (`query-id  corpus-id  score`, header line optional)."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    try:
        handle = open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise DatasetError(path, f"cannot open: {exc.strerror}") from None
    with handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise DatasetError(path, f"expected 3 tab-separated columns, got {len(row)}", number)
            try:
                grade = int(row[2])
            except ValueError:
                raise DatasetError(path, f"score {row[2]!r} is not an integer", number) from None
            qrels.setdefault(row[0], {})[row[1]] = grade
    return qrels


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR folder that has at least a corpus.jsonl."""

    root: Path

    @classmethod
    def open(cls, root: Path | str) -> BeirDataset:
        root = Path(root)
        if not root.exists():
            raise DatasetError(root, "no such directory")
        if not root.is_dir():
            raise DatasetError(root, "not a directory (a BEIR dataset is a folder with corpus.jsonl)")
        if not (root / "corpus.jsonl").is_file():
            raise DatasetError(
                root, "no corpus.jsonl here (a BEIR dataset has corpus.jsonl, queries.jsonl, qrels/)"
            )
        return cls(root)

    @property
    def corpus_path(self) -> Path:
        return self.root / "corpus.jsonl"

    def documents(self, errors: list[DatasetError] | None = None) -> Iterator[BeirDocument]:
        return read_corpus(self.corpus_path, errors)

    def count_documents(self) -> int:
        """Non-blank lines of corpus.jsonl: the total for a progress bar, without parsing."""
        with open(self.corpus_path, "rb") as handle:
            return sum(1 for line in handle if line.strip())

    def queries(self) -> list[BeirQuery]:
        path = self.root / "queries.jsonl"
        if not path.is_file():
            raise DatasetError(self.root, "no queries.jsonl here")
        return read_queries(path)

    def splits(self) -> list[str]:
        """The qrels splits present (qrels/<split>.tsv), sorted."""
        return sorted(path.stem for path in (self.root / "qrels").glob("*.tsv"))

    def qrels(self, split: str) -> dict[str, dict[str, int]]:
        path = self.root / "qrels" / f"{split}.tsv"
        if not path.is_file():
            have = ", ".join(self.splits()) or "none"
            raise DatasetError(self.root, f"no qrels for split {split!r} (splits here: {have})")
        return read_qrels(path)


def shipped_sample() -> BeirDataset:
    """The NFCorpus slice shipped for the demo (bench/sample; CC BY-SA 4.0, see its NOTICE)."""
    return BeirDataset.open(Path(str(files("nirbridge.bench") / "sample")))
