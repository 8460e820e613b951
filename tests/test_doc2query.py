"""doc2query on a real (tiny) seq2seq model trained here, alone and through the enrichment pipeline.

No doc2query checkpoint can be downloaded here, so the session fixture trains one: a 2-layer T5 (d_model 64)
on SciFact's training pairs (document -> query), with all-MiniLM-L6-v2's WordPiece vocabulary cut down to the
pieces those pairs use (the output layer over 30,522 pieces would cost most of the training time).  After a
few hundred steps it samples queries made of SciFact's words; that, and everything the generator promises
(at most n distinct queries, the same queries for the same seed in any batch, the filter keeping the best
fraction under an independently computed cosine), is what the tests check.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nirbridge.workers.doc2query import Doc2QueryGenerator, normalise_query  # noqa: E402
from nirbridge.workers.errors import BadInputError  # noqa: E402
from nirbridge.workers.models import fingerprint, resolve_model  # noqa: E402
from nirbridge.workers.pipeline import EncoderSpec, EnrichmentSpec, run_enrichment  # noqa: E402

TRAIN_STEPS = 300
DOC_TOKENS = 64


def _scifact_pairs(scifact: Path) -> list[tuple[str, str]]:
    queries = {}
    for line in (scifact / "queries.jsonl").read_text().splitlines():
        row = json.loads(line)
        queries[row["_id"]] = row["text"]
    qrels = [line.split("\t")[:2] for line in (scifact / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    wanted = {doc for _, doc in qrels}
    corpus = {}
    with (scifact / "corpus.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            if row["_id"] in wanted:
                corpus[row["_id"]] = f"{row['title']} {row['text']}".strip()
    return [(corpus[d], queries[q]) for q, d in qrels if d in corpus and q in queries]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread for this module: the matrices of a 64-wide model are too small to share, and on a
    busy two-core machine two threads waiting on each other ran the training step 25 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def pairs(scifact_dir: Path) -> list[tuple[str, str]]:
    return _scifact_pairs(scifact_dir)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, pairs: list[tuple[str, str]]) -> Path:
    """A T5ForConditionalGeneration trained TRAIN_STEPS steps on SciFact's train pairs, saved as a folder."""
    from transformers import BertTokenizerFast, GenerationConfig, T5Config, T5ForConditionalGeneration

    out = tmp_path_factory.mktemp("doc2query-t5-tiny")
    minilm = BertTokenizerFast.from_pretrained(str(resolve_model("all-MiniLM-L6-v2")), local_files_only=True)
    used = set(minilm.all_special_ids)
    for text in [d for d, _ in pairs] + [q for _, q in pairs]:
        used.update(minilm(text, truncation=True, max_length=DOC_TOKENS)["input_ids"])
    pieces = sorted(minilm.vocab.items(), key=lambda item: item[1])
    (out / "vocab.txt").write_text("".join(piece + "\n" for piece, i in pieces if i in used))
    tokenizer = BertTokenizerFast(vocab_file=str(out / "vocab.txt"), do_lower_case=True, model_max_length=512)
    tokenizer.save_pretrained(str(out))

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
        decoder_start_token_id=tokenizer.cls_token_id,
    )
    model = T5ForConditionalGeneration(config)
    docs = tokenizer(
        [d for d, _ in pairs], truncation=True, max_length=DOC_TOKENS, padding=True, return_tensors="pt"
    )
    # the target is the query's pieces then [SEP] (the EOS); the decoder starts from [CLS]
    targets = tokenizer(
        [q for _, q in pairs], truncation=True, max_length=32, padding=True, return_tensors="pt"
    )
    labels = targets["input_ids"][:, 1:].clone()
    labels[labels == tokenizer.pad_token_id] = -100
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    draw = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see one_thread (session fixtures start before module ones)
    try:
        for _ in range(TRAIN_STEPS):
            rows = torch.randint(0, len(pairs), (32,), generator=draw)
            mask = docs["attention_mask"][rows]
            width = int(mask.sum(1).max())
            label = labels[rows]
            length = int((label != -100).sum(1).max())
            loss = model(
                input_ids=docs["input_ids"][rows, :width],
                attention_mask=mask[:, :width],
                labels=label[:, :length].contiguous(),
            ).loss
            loss.backward()
            optimiser.step()
            optimiser.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(str(out))
    print(f"doc2query fixture: {TRAIN_STEPS} steps in {time.perf_counter() - started:.1f}s, loss {loss:.2f}")
    return out


WORD = re.compile(r"[a-z]+")


@pytest.fixture(scope="module")
def generator(model_dir: Path) -> Doc2QueryGenerator:
    return Doc2QueryGenerator(str(model_dir), "torch-fp32", n=5)


@pytest.fixture(scope="module")
def documents(pairs: list[tuple[str, str]]) -> list[str]:
    return list(dict.fromkeys(doc for doc, _ in pairs))[:8]


def _reference_cosines(text: str, queries: list[str], minilm: tuple) -> np.ndarray:
    """all-MiniLM-L6-v2 as its modules.json says (masked mean pooling, L2 norm), on transformers directly."""
    tokenizer, model = minilm
    batch = tokenizer([text, *queries], truncation=True, max_length=256, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    vectors = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).double().numpy()
    return vectors[1:] @ vectors[0]


def test_loads_by_path_and_samples_distinct_in_domain_queries(
    generator: Doc2QueryGenerator, model_dir: Path, documents: list[str], pairs: list[tuple[str, str]]
) -> None:
    assert generator.path == model_dir.resolve()
    assert generator.fingerprint == fingerprint(model_dir)
    assert generator.backend == "torch-fp32"
    queries = generator.generate(documents)
    assert len(queries) == len(documents)
    for qs in queries:
        assert 1 <= len(qs) <= 5
        assert all(q.strip() == q and q for q in qs)
        keys = [normalise_query(q) for q in qs]
        assert len(set(keys)) == len(keys), qs
    # trained on SciFact, the model writes short queries of SciFact's query words; the same network untrained
    # (measured once) runs on to max_new_tokens, repeating pieces, with 0.51 of its words from those queries
    known = {word for _, query in pairs for word in WORD.findall(query.lower())}
    words = [word for qs in queries for q in qs for word in WORD.findall(q)]
    assert len(words) >= 40
    share = sum(word in known for word in words) / len(words)
    assert share > 0.65, (share, queries[:2])
    lengths = sorted(len(q.split()) for qs in queries for q in qs)
    assert lengths[len(lengths) // 2] <= 20, queries[:2]
    expansions = generator.expand(documents)
    assert expansions == ["\n".join(qs) for qs in queries]


def test_same_seed_same_queries_in_any_batch_other_seed_others(
    generator: Doc2QueryGenerator, model_dir: Path, documents: list[str]
) -> None:
    first = generator.generate(documents)
    assert generator.generate(documents) == first
    assert generator.generate(documents[::-1]) == first[::-1]
    assert generator.generate([documents[3]]) == [first[3]]
    other = Doc2QueryGenerator(str(model_dir), "torch-fp32", n=5, seed=1, batch_size=3)
    assert other.generate(documents) != first


def test_truncation_at_max_length(model_dir: Path, documents: list[str]) -> None:
    short = Doc2QueryGenerator(str(model_dir), "torch-fp32", n=3, max_length=12)
    head = documents[0]
    assert short.generate([head]) == short.generate([head + " And a tail the model never reads."])
    full = Doc2QueryGenerator(str(model_dir), "torch-fp32", n=3)
    assert full.generate([head]) != full.generate([head + " And a tail the model never reads."])


def test_filter_keeps_the_best_fraction_by_bi_encoder_cosine(
    generator: Doc2QueryGenerator, model_dir: Path, documents: list[str]
) -> None:
    filtered = Doc2QueryGenerator(
        str(model_dir), "torch-fp32", n=5, filter_keep=0.4, filter_backend="torch-fp32"
    )
    from transformers import AutoModel, AutoTokenizer

    path = str(resolve_model("all-MiniLM-L6-v2"))
    minilm = (
        AutoTokenizer.from_pretrained(path, local_files_only=True),
        AutoModel.from_pretrained(path, local_files_only=True).eval(),
    )
    candidates = generator.generate(documents[:4])  # same seed: the same samples before the filter
    kept = filtered.generate(documents[:4])
    for text, all_queries, best in zip(documents, candidates, kept, strict=False):
        assert len(best) == math.ceil(0.4 * len(all_queries))
        assert set(best) <= set(all_queries)
        reference = dict(zip(all_queries, _reference_cosines(text, all_queries, minilm), strict=True))
        scores = [reference[q] for q in best]
        assert scores == sorted(scores, reverse=True)
        dropped = [reference[q] for q in all_queries if q not in best]
        assert not dropped or min(scores) >= max(dropped) - 1e-5
        ours = filtered.score(text, all_queries)
        assert np.allclose(ours, [reference[q] for q in all_queries], atol=1e-4)


def test_bad_parameters_and_texts_are_refused(generator: Doc2QueryGenerator, model_dir: Path) -> None:
    with pytest.raises(BadInputError) as refused:
        generator.generate(["Statins and breast cancer.", "  ", None, 7])
    assert [f.index for f in refused.value.failures] == [1, 2, 3]
    with pytest.raises(ValueError, match="filter_keep"):
        Doc2QueryGenerator(str(model_dir), "torch-fp32", filter_keep=0)
    with pytest.raises(ValueError, match="n must be"):
        Doc2QueryGenerator(str(model_dir), "torch-fp32", n=0)
    with pytest.raises(ValueError, match="torch-fp32"):
        Doc2QueryGenerator(str(model_dir), "tensorrt")
    # one --backend serves every encoder of a job: the ONNX CPU names generate on torch fp32
    assert Doc2QueryGenerator(str(model_dir), "onnx-int8").backend == "torch-fp32"


def test_run_enrichment_writes_the_expansion_and_reports_bad_documents(
    generator: Doc2QueryGenerator, model_dir: Path, pairs: list[tuple[str, str]]
) -> None:
    from nirbridge.workers.pipeline import spec_fingerprints

    spec = EnrichmentSpec(
        fields=("title", "text"), doc2query=EncoderSpec(str(model_dir), backend="torch-fp32")
    )
    good = [
        {"_id": "a", "_source": {"title": "Statins and breast cancer", "text": pairs[0][0]}},
        {"_id": "b", "_source": {"text": pairs[1][0]}},
        {"_id": "c", "_source": {"title": "Vitamin D", "text": ["and the risk", "of dementia"]}},
    ]
    bad = [
        {"_id": "empty", "_source": {"title": "", "text": "   "}},
        {"_id": "missing", "_source": {"abstract": "no title, no text"}},
        {"_id": "number", "_source": {"title": "A title", "text": {"value": 42}}},
    ]
    docs = [good[0], bad[0], good[1], bad[1], bad[2], good[2]]
    results = run_enrichment(spec, docs)
    assert [r.id for r in results] == [d["_id"] for d in docs]
    by_id = {r.id: r for r in results}
    assert not by_id["empty"].ok and "no text" in by_id["empty"].reason
    assert not by_id["missing"].ok and "no text" in by_id["missing"].reason
    assert not by_id["number"].ok and "'text' is not text" in by_id["number"].reason
    texts = [
        f"Statins and breast cancer {pairs[0][0]}",
        pairs[1][0],
        "Vitamin D and the risk of dementia",
    ]
    expected = generator.expand(texts)
    for doc, expansion in zip(good, expected, strict=True):
        update = by_id[doc["_id"]].update
        assert update is not None
        assert update["nir_expansion"] == expansion and expansion
        assert set(update) == {"nir_expansion", "nir_meta"}
        models = update["nir_meta"]["models"]
        assert models == {"expansion": f"{model_dir}@{fingerprint(model_dir)}"}
    # the fingerprint a re-run compares against, computed without loading the model, is the one written
    assert spec_fingerprints(spec) == models
