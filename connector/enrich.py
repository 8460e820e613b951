"""The enrichment job: read an index, enrich what needs it on a runner, write it back, checkpoint every batch.

    job = EnrichJob(client, url, runner, EnrichOptions(index="corpus", spec=spec, checkpoint=path))
    report = job.run(progress=lambda report, scanned: ...)
    report.as_json()    # processed, skipped, failed (ids, reasons), docs_per_s, the mapping change

The steps, in order:
1. The runner is checked (broker, a live worker) and describes the spec: the model fingerprints to compare
   with each document's `nir_meta`, and the dense model's dimension and space type for the mapping.
2. The mapping: the fields this spec writes are added with a put-mapping when the index allows it; when it
   does not (a `knn_vector` on an index created without `index.knn`, a field in another form), a new index
   `<name>-nir-<n>` is created, the documents are copied into it, enriched there, and the name is moved to it
   with one `_aliases` call at the end (`connector.migration`): readers use the old index until then.
   `dry_run` stops after planning and reports what would change. Documents written to the old index while
   it is copied are not in the new one: pause writers, or re-run with `--query` on an update timestamp.
3. The scan: point in time + `search_after` on `_id`, one reader thread per slice (`slices`), a few batches
   read ahead, so that reading hides behind the encoders. A document whose `nir_meta` has the same content
   hash and the same model fingerprints is skipped (not sent); the others go to the runner in batches of
   `batch_size` (`--query` narrows the scan for incremental runs).
4. Each enriched batch is written with `_bulk` partial updates (`connector.writer`: back-off on 429/5xx, 4xx
   reported, not retried), `nir_meta` set by `content.meta_update`, and then the checkpoint is saved: the
   slice's `search_after` position, the counters and the failed ids with their reasons.
5. Throttling (`connector.throttle.AdaptiveRate`): with `max_docs_per_s` the job waits between batches to
   stay under that rate (a live cluster's share). Whether or not there is a ceiling, a batch whose writes
   were answered 429 (the writer's retried items, or requests the client's transport retried) halves the
   rate, and each clean batch wins back 5% of the reference rate: repeated 429s back off harder and harder,
   recovery is slow. The copies a migration makes (into the new index, and of a concrete index the swap
   replaces) are paced by the same rate, `chunk_docs` documents at a time; a stop during a copy takes effect
   when it is done.

Pausing: `request_stop()` (the CLI calls it on SIGINT/SIGTERM, `connector.pause`) stops feeding the runner;
the batches already sent are enriched, written and checkpointed, and `run` returns a report with `paused`
set, the checkpoint kept and no alias swapped. Resuming is running the same command again. Stopping hard
(`kill -9`) is safe too, as below.

A job killed at any point (`kill -9`) resumes from its checkpoint: the index is refreshed first, so documents
written after the last save are seen as enriched and skipped; every document is enriched once. The checkpoint
is deleted when the run completes, so the next run scans everything again and skips what is current.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from nirbridge.workers.pipeline import EnrichmentSpec, NoText, document_text

from .checkpoint import Checkpoint, open_checkpoint
from .client import cluster_error
from .content import meta_update, needs_enrichment, source_fields
from .errors import IndexNotFound, MigrationError, UsageError
from .migration import Plan, apply, copy_documents, plan_mapping_change, swap_alias
from .runner import Runner
from .scan import scan_documents
from .schema import EnrichedFields, FieldKind, enriched_properties
from .throttle import AdaptiveRate
from .writer import ItemResult, streaming_update, summarize

__all__ = ["EnrichJob", "EnrichOptions", "EnrichReport", "spec_digest", "wanted_mapping"]

SCAN_KEEP_ALIVE = "1h"  # how long the scan's point in time lives between two pages (see _batches)
# the enriched field each encoder kind of the spec writes (connector.schema's kinds)
_FIELD_KIND: dict[str, FieldKind] = {
    "sparse": "sparse",
    "terms": "terms",
    "doc2query": "expansion",
    "dense": "dense",
}
_READ_AHEAD = 4  # batches each slice reader keeps ready


@dataclass(frozen=True)
class EnrichOptions:
    """One run of the job: what to enrich, how, and where its checkpoint lives."""

    index: str
    spec: EnrichmentSpec
    checkpoint: Path
    query: dict[str, Any] | None = None
    batch_size: int = 32
    slices: int = 1
    page_size: int = 500
    restart: bool = False
    dry_run: bool = False
    chunk_docs: int = 500
    max_retries: int = 5
    max_docs_per_s: float | None = None  # a ceiling on documents written per second (a live cluster's share)

    def __post_init__(self) -> None:
        for name in ("batch_size", "slices", "page_size", "chunk_docs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if self.max_docs_per_s is not None and not self.max_docs_per_s > 0:
            raise UsageError(f"max_docs_per_s must be positive, got {self.max_docs_per_s!r}")
        if self.query is not None and not isinstance(self.query, dict):
            raise UsageError(f"the query must be a JSON object, got {type(self.query).__name__}")


@dataclass
class EnrichReport:
    """What a run did; `as_json` is the `--json` output."""

    index: str
    target: str | None = None
    mapping: dict[str, Any] = field(default_factory=dict)
    mapping_text: str = ""  # Plan.describe(): what the mapping change is, one line each
    to_scan: int | None = None
    scanned_before: int = 0  # documents a resumed run's earlier attempts already went through
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    skipped_empty: int = 0  # documents with no text in the fields: nothing to enrich, not a failure
    empty: list[dict[str, str]] = field(default_factory=list)  # their ids and the reason (MAX_FAILURES kept)
    processed_before: int = 0  # documents a resumed run's earlier attempts wrote (not in this run's rate)
    seconds: float = 0.0
    resumed: bool = False
    swapped_from: str | None = None
    dry_run: bool = False
    paused: bool = False  # stopped on request before the end: the checkpoint is kept, nothing swapped
    rate_cuts: int = 0  # times 429s made the job halve its rate
    rate_limit: float | None = None  # the documents per second ceiling in force at the end (None: none)
    models: dict[str, str] = field(default_factory=dict)

    def count_from(self, checkpoint: Checkpoint) -> None:
        """Take the counters and the failures the checkpoint holds (this run's and earlier attempts')."""
        self.processed, self.skipped = checkpoint.processed, checkpoint.skipped
        self.failed, self.failures = checkpoint.failed, list(checkpoint.failures)
        self.skipped_empty, self.empty = checkpoint.skipped_empty, list(checkpoint.empty)

    @property
    def docs_per_s(self) -> float:
        """Documents this run enriched and wrote, per second of this run: failures and skips are not
        throughput (a re-run that only met a failing document used to report its rate from that one)."""
        done = self.processed - self.processed_before
        return done / self.seconds if self.seconds > 0 and done > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "target": self.target,
            "processed": self.processed,
            "skipped": self.skipped,
            "failed": self.failed,
            "failures": self.failures,
            "skipped_empty": self.skipped_empty,
            "empty": self.empty,
            "docs_per_s": round(self.docs_per_s, 2),
            "seconds": round(self.seconds, 3),
            "resumed": self.resumed,
            "swapped_from": self.swapped_from,
            "dry_run": self.dry_run,
            "paused": self.paused,
            "rate_cuts": self.rate_cuts,
            "rate_limit": round(self.rate_limit, 2) if self.rate_limit is not None else None,
            "to_scan": self.to_scan,
            "mapping": self.mapping,
            "models": self.models,
        }


@dataclass
class _Batch:
    """Documents of one slice on their way to the runner, and what the checkpoint records once written."""

    slice_id: int
    hits: list[dict[str, Any]]  # the hits to enrich (with nir_meta, for meta_update)
    position: list[Any] | None  # search_after of the last hit read, skipped ones included
    skipped: int
    scanned: int
    last: bool = False  # the slice ends with this batch
    empty: list[tuple[str, str]] = field(default_factory=list)  # (id, reason): no text, not sent

    def docs(self, meta_field: str) -> list[dict[str, Any]]:
        """What the workers get: `_id` and the text fields the scan fetched, without `nir_meta`."""
        return [
            {
                "_id": hit["_id"],
                "_source": {k: v for k, v in (hit.get("_source") or {}).items() if k != meta_field},
            }
            for hit in self.hits
        ]


def _no_text(hit: Mapping[str, Any], fields: Sequence[str]) -> str | None:
    """Why the hit has nothing to enrich (its fields hold no text), else None. Any other bad field is left
    to the workers, which report it as a failure."""
    try:
        document_text(hit.get("_source") or {}, fields)
    except NoText as error:
        return str(error)
    except ValueError:
        return None
    return None


def _field_names(spec: EnrichmentSpec) -> EnrichedFields:
    """The spec's field names as the schema's type (workers.pipeline.FieldNames has the same fields)."""
    return EnrichedFields(**asdict(spec.field_names))


def wanted_mapping(
    spec: EnrichmentSpec, described: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The properties and settings the fields of `spec` need, given the runner's `describe` answer."""
    kinds: list[FieldKind] = [_FIELD_KIND[kind] for kind in spec.encoders()]
    if spec.terms is not None and spec.terms.params.get("pseudo_text_scale") is not None:
        kinds.append("terms_text")  # DeepCT's pseudo-text beside nir_terms
    kinds.append("meta")
    dense = described.get("dense") or {}
    properties = enriched_properties(
        _field_names(spec),
        dense_dimension=dense.get("dimension"),
        dense_space_type=str(dense.get("space_type", "cosinesimil")),
        kinds=tuple(kinds),
    )
    settings: dict[str, Any] = {"index.knn": True} if spec.dense is not None else {}
    return properties, settings


def spec_digest(spec: EnrichmentSpec, fingerprints: Mapping[str, str]) -> str:
    """What a checkpoint belongs to: the fields read, the names written and the models' fingerprints."""
    value = {"fields": list(spec.fields), "names": asdict(spec.field_names), "models": dict(fingerprints)}
    return "sha256:" + hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


class _SliceReaders:
    """One thread per slice reads and sorts hits into batches, a few batches ahead of the consumer.

    Batches come out round-robin over the slices that are not finished. A reader's exception is raised in
    the consumer; closing (also on the consumer's exception) stops the readers and closes their points in
    time.
    """

    def __init__(self, make_batches: Callable[[int], Iterator[_Batch]], slice_ids: Sequence[int]) -> None:
        self._stop = threading.Event()
        self._queues: dict[int, queue.Queue[Any]] = {s: queue.Queue(maxsize=_READ_AHEAD) for s in slice_ids}
        self._threads = [
            threading.Thread(
                target=self._read, args=(s, make_batches), name=f"nirbridge-scan-{s}", daemon=True
            )
            for s in slice_ids
        ]
        for thread in self._threads:
            thread.start()

    def _put(self, slice_id: int, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queues[slice_id].put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, slice_id: int, make_batches: Callable[[int], Iterator[_Batch]]) -> None:
        batches = make_batches(slice_id)
        try:
            for batch in batches:
                if not self._put(slice_id, batch):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(slice_id, error)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # the scan's finally deletes its point in time

    def __iter__(self) -> Iterator[_Batch]:
        active = list(self._queues)
        while active:
            for slice_id in list(active):
                item = self._queues[slice_id].get()
                if isinstance(item, BaseException):
                    raise item
                if item.last:
                    active.remove(slice_id)
                yield item

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)


class EnrichJob:
    """`nirbridge enrich`: see the module's docstring."""

    def __init__(self, client: OpenSearch, url: str, runner: Runner, options: EnrichOptions) -> None:
        self.client = client
        self.url = url
        self.runner = runner
        self.options = options
        self.fields = list(options.spec.fields)
        self.meta_field = options.spec.field_names.meta
        self._stop = threading.Event()

    def request_stop(self) -> None:
        """Pause: finish the batches sent to the runner, checkpoint them and return (safe from a signal
        handler or another thread)."""
        self._stop.set()

    def _rejections(self) -> int:
        """429 answers the client's transport has retried so far (`client.BackoffConnection.rejected`)."""
        connections = getattr(self.client.transport.connection_pool, "connections", ())
        return sum(int(getattr(connection, "rejected", 0)) for connection in connections)

    # --- before the scan ------------------------------------------------------------------------------------

    def _count(self, index: str) -> int | None:
        body = {"query": self.options.query} if self.options.query else None
        try:
            return int(self.client.count(index=index, body=body)["count"])
        except TransportError as exc:
            raise cluster_error(exc, self.url, index) from exc

    def _refresh(self, index: str) -> None:
        try:
            self.client.indices.refresh(index=index)
        except TransportError as exc:
            raise cluster_error(exc, self.url, index) from exc

    def _exists(self, index: str) -> bool:
        try:
            return bool(self.client.indices.exists(index=index))
        except TransportError as exc:
            raise cluster_error(exc, self.url, index) from exc

    def _paced(self, results: Iterator[ItemResult], rate: AdaptiveRate) -> Iterator[ItemResult]:
        """A copy's results, waiting after every chunk as the throttle says: the copy writes too."""
        done, pushback, rejected_before = 0, False, self._rejections()
        rate.restart_clock()
        for item in results:
            yield item
            done += 1
            pushback = pushback or item.attempts > 1 or item.status == 429
            if done == self.options.chunk_docs:
                time.sleep(rate.after_batch(done, pushback or self._rejections() > rejected_before))
                done, pushback, rejected_before = 0, False, self._rejections()

    def _migrate(self, plan: Plan, checkpoint: Checkpoint, rate: AdaptiveRate) -> str:
        """Create the new index and copy every document into it, throttled as the enrichment is (once: a
        resumed run finds it in the checkpoint)."""
        if checkpoint.target and self._exists(checkpoint.target):
            return checkpoint.target
        target = apply(self.client, plan)
        copying = copy_documents(
            self.client,
            plan.concrete,
            target,
            drop_fields=plan.drop_fields,
            page_size=self.options.page_size,
            chunk_docs=self.options.chunk_docs,
            max_retries=self.options.max_retries,
        )
        copied = summarize(self._paced(copying, rate))
        if copied.failed:
            first = copied.failures[0]
            raise MigrationError(
                self.url,
                f"copying {plan.concrete} into {target}: {copied.failed} documents failed "
                f"(first: {first.id}: {first.reason}); {plan.index} is unchanged, "
                f"{target} is left to inspect",
                target,
            )
        checkpoint.target = target
        checkpoint.save(self.options.checkpoint)
        return target

    # --- the scan -------------------------------------------------------------------------------------------

    def _batches(
        self, target: str, fingerprints: Mapping[str, str], checkpoint: Checkpoint, slice_id: int
    ) -> Iterator[_Batch]:
        options = self.options
        hits: list[dict[str, Any]] = []
        empty: list[tuple[str, str]] = []
        skipped = scanned = 0
        position = checkpoint.position(slice_id)
        # a slice that only skips still reports its progress now and then, so a resume need not re-read it
        flush_every = max(options.page_size, 10 * options.batch_size)
        for hit in scan_documents(
            self.client,
            target,
            query=options.query,
            fields=source_fields(self.fields, self.meta_field),
            slice_id=slice_id,
            slices=options.slices,
            page_size=options.page_size,
            search_after=position,
            order="id",
            # the next page is read only once this one is consumed: at a slow encoder's pace (doc2query on
            # a CPU: well under 1 doc/s) a page of 500 takes many minutes, and a 5-minute point in time
            # expired under such a job (search_context_missing_exception); each page renews it
            keep_alive=SCAN_KEEP_ALIVE,
        ):
            scanned += 1
            position = hit.get("sort", position)
            if not needs_enrichment(hit, fingerprints, self.fields, self.meta_field):
                skipped += 1
            elif (no_text := _no_text(hit, self.fields)) is not None:
                empty.append((hit["_id"], no_text))
            else:
                hits.append(hit)
            if len(hits) >= options.batch_size or scanned >= flush_every:
                yield _Batch(slice_id, hits, position, skipped, scanned, empty=empty)
                hits, empty, skipped, scanned = [], [], 0, 0
        yield _Batch(slice_id, hits, position, skipped, scanned, last=True, empty=empty)

    # --- writing --------------------------------------------------------------------------------------------

    def _write(
        self, target: str, batch: _Batch, results: Sequence[Any], fingerprints: Mapping[str, str]
    ) -> tuple[int, list[tuple[str, str]], bool]:
        """Write one enriched batch; (documents written, [(id, reason)] of those that failed, whether the
        cluster pushed back: an item retried after 429/5xx or answered 429 in the end)."""
        by_id = {hit["_id"]: hit for hit in batch.hits}
        failures: list[tuple[str, str]] = []
        updates: list[tuple[str, dict[str, Any]]] = []
        for result in results:
            if not result.ok:
                failures.append((result.id, result.reason))
                continue
            update = dict(result.update)
            update[self.meta_field] = meta_update(
                by_id[result.id], fingerprints, self.fields, self.meta_field
            )
            updates.append((result.id, update))
        returned = {result.id for result in results}
        failures.extend(
            (doc_id, "the runner returned no result for it") for doc_id in by_id if doc_id not in returned
        )
        written = 0
        pushback = False
        item: ItemResult
        for item in streaming_update(
            self.client,
            target,
            updates,
            chunk_docs=self.options.chunk_docs,
            max_retries=self.options.max_retries,
        ):
            pushback = pushback or item.attempts > 1 or item.status == 429
            if item.ok:
                written += 1
            else:
                failures.append((item.id, f"write failed ({item.status} {item.error_type}): {item.reason}"))
        return written, failures, pushback

    # --- the run --------------------------------------------------------------------------------------------

    def run(self, progress: Callable[[EnrichReport, int], None] | None = None) -> EnrichReport:
        """Carry out the job; `progress(report, scanned)` is called after every written batch."""
        options = self.options
        spec = options.spec
        report = EnrichReport(index=options.index, dry_run=options.dry_run)
        if not self._exists(options.index):
            raise IndexNotFound(self.url, options.index)
        self.runner.check()
        described = self.runner.describe(spec)
        fingerprints = {str(k): str(v) for k, v in described["models"].items()}
        report.models = dict(fingerprints)
        properties, settings = wanted_mapping(spec, described)
        plan = plan_mapping_change(self.client, options.index, properties, settings)
        report.mapping, report.mapping_text = plan.to_dict(), plan.describe()
        if options.dry_run:
            report.to_scan = self._count(options.index)
            return report

        checkpoint = open_checkpoint(
            options.checkpoint,
            index=options.index,
            query=options.query,
            spec_fingerprint=spec_digest(spec, fingerprints),
            slices=options.slices,
            restart=options.restart,
        )
        report.resumed = bool(checkpoint.positions or checkpoint.target or checkpoint.finished)
        rate = AdaptiveRate(options.max_docs_per_s)  # one rate for the copy and the enrichment
        if plan.needs_new_index:
            target = self._migrate(plan, checkpoint, rate)
        elif checkpoint.target and self._exists(checkpoint.target):
            target = checkpoint.target  # killed after the swap, before the checkpoint was removed
        else:
            target = apply(self.client, plan)
        report.target = target
        self._refresh(target)  # what was written before a kill must be visible to the skip test and the count
        report.to_scan = self._count(target)
        report.count_from(checkpoint)
        report.processed_before = checkpoint.processed

        pending = [s for s in range(options.slices) if not checkpoint.is_finished(s)]
        started = time.perf_counter()
        scanned = report.scanned_before = (
            checkpoint.processed + checkpoint.skipped + checkpoint.failed + checkpoint.skipped_empty
        )
        if pending and not self._stop.is_set():
            readers = _SliceReaders(lambda s: self._batches(target, fingerprints, checkpoint, s), pending)
            sent: deque[_Batch] = deque()

            def to_runner() -> Iterator[list[dict[str, Any]]]:
                batches = iter(readers)
                while not self._stop.is_set():  # on a stop, the runner finishes what it was sent
                    batch = next(batches, None)
                    if batch is None:
                        return
                    sent.append(batch)
                    yield batch.docs(self.meta_field)

            try:
                rate.restart_clock()
                for done in self.runner.enrich(spec, to_runner()):
                    batch = sent.popleft()
                    rejected_before = self._rejections()
                    written, failures, pushback = self._write(target, batch, done.results, fingerprints)
                    pushback = pushback or self._rejections() > rejected_before
                    checkpoint.record_batch(
                        batch.slice_id,
                        batch.position,
                        processed=written,
                        skipped=batch.skipped,
                        failures=failures,
                        empty=batch.empty,
                    )
                    if batch.last:
                        checkpoint.finish_slice(batch.slice_id)
                    checkpoint.save(options.checkpoint)
                    scanned += batch.scanned
                    report.count_from(checkpoint)
                    report.seconds = time.perf_counter() - started
                    if progress is not None:
                        progress(report, scanned)
                    self._stop.wait(rate.after_batch(written + len(failures), pushback))
            finally:
                readers.close()
        report.seconds = time.perf_counter() - started
        report.rate_cuts, report.rate_limit = rate.cuts, rate.rate
        if not all(checkpoint.is_finished(s) for s in range(options.slices)):
            report.paused = True  # stopped on request: resume with the same command
            return report

        if plan.needs_new_index and target != plan.concrete:
            pace = partial(self._paced, rate=rate)
            swap_alias(self.client, options.index, target, pace=pace, chunk_docs=options.chunk_docs)
            report.swapped_from = plan.concrete
            report.rate_cuts, report.rate_limit = rate.cuts, rate.rate  # a kept copy is paced too
        self._refresh(target)
        Path(options.checkpoint).unlink(missing_ok=True)  # complete: the next run starts over (and skips)
        return report
