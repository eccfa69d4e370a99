"""One work unit of the tokenize stage: an input shard encoded into one train and one val shard."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tokenizers import Tokenizer

from pipeline.core.shard_io import UNREADABLE, arrow_batches
from pipeline.core.stage import RejectedLedger, UnitLedger, local_file
from pipeline.tokenize.engine import choose_engine, tiktoken_encoding
from pipeline.tokenize.shards import INDEX_SUFFIX, SPLITS, split_of, write_token_shard
from pipeline.tokenize.tokenizer import load_document_tokenizer

STAGE = "tokenize"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodeJob:
    """Everything a worker (a thread, or a Ray task) needs to encode one input shard (picklable)."""

    unit: str
    """`shard-NNNNN`: the output shard name in both splits, NNNNN the input shard's position."""
    input_path: str
    stage_dir: str
    tokenizer_path: str
    tokenizer_sha256: str
    eod_id: int
    dtype: str
    val_fraction: float
    batch_documents: int


@dataclass
class DocumentBatch:
    """Up to `batch_documents` input rows as Python lists (the tokenizer takes a list of str)."""

    ids: list[str | None] = field(default_factory=list)
    urls: list[str | None] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    nbytes: list[int | None] = field(default_factory=list)

    def extend(self, batch: pa.RecordBatch) -> None:
        names = batch.schema.names
        self.ids += batch.column("id").to_pylist()
        self.texts += batch.column("text").to_pylist()
        self.urls += batch.column("url").to_pylist() if "url" in names else [None] * len(batch)
        self.nbytes += pc.binary_length(batch.column("text")).to_pylist()  # UTF-8 bytes


class SplitBuffer:
    """The tokens and index rows of one split of one unit, until its shard is written."""

    def __init__(self, dtype: str, eod_id: int):
        self.dtype, self.eod_id = np.dtype(dtype), eod_id
        self.chunks: list[np.ndarray] = []
        self.ids: list[str] = []
        self.lengths: list[int] = []
        self.text_bytes = 0

    def add(self, doc_ids: list[str], token_ids: list[np.ndarray], nbytes: list[int]) -> None:
        eod = np.array([self.eod_id], dtype=np.uint32)
        # Every document ends with EOD, the last one too. The ids fit `dtype` (the manifest's
        # dtype is chosen from the padded vocabulary size), so the cast keeps every value.
        flat = np.concatenate([part for ids in token_ids for part in (ids, eod)])
        self.chunks.append(flat.astype(self.dtype, copy=False))
        self.ids += doc_ids
        self.lengths += [len(ids) + 1 for ids in token_ids]
        self.text_bytes += sum(nbytes)

    def write(self, split_dir: Path, name: str) -> dict[str, Any] | None:
        if not self.ids:
            return None  # no empty shards: a split may have no document from a small shard
        tokens = np.concatenate(self.chunks)
        info = write_token_shard(split_dir, name, tokens, self.ids, np.array(self.lengths))
        return info | {"text_bytes": self.text_bytes}


def encode_texts(tokenizer: Tokenizer, texts: list[str]) -> list[list[int] | Exception]:
    """Token ids per text; a text that cannot be encoded gets its exception instead."""
    try:
        return [enc.ids for enc in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
    except Exception:
        # One bad text fails the whole batch: encode one by one to find it and keep the rest.
        return [_encode_one(tokenizer, text) for text in texts]


def _encode_one(tokenizer: Tokenizer, text: str) -> list[int] | Exception:
    try:
        return tokenizer.encode(text, add_special_tokens=False).ids
    except Exception as exc:
        return exc


class DocumentEncoder:
    """Token ids of document texts, identical to HF `tokenizers`, by the fastest exact engine.

    tiktoken when the vocabulary can be expressed there exactly (pipeline/tokenize/engine.py says
    why the ids are the same), else HF `tokenizers`; `choice` names the engine and the reason.
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.choice = choose_engine(tokenizer)
        self.fast = tiktoken_encoding(self.choice.ranks) if self.choice.ranks else None
        # The Rust core's `encode_ordinary`: all of the text is ordinary text (no special token
        # is matched, as in HF with `encode_special_tokens`), a third faster than `encode` with
        # no special tokens allowed, which still scans for them. tiktoken's public
        # `encode_ordinary` would replace lone surrogates silently; the core raises, as HF does.
        self._ordinary = self.fast._core_bpe.encode_ordinary if self.fast else None

    def encode(self, texts: list[str]) -> list[np.ndarray | Exception]:
        """uint32 token ids per text; a text that cannot be encoded gets its exception instead."""
        if self.fast is None:
            return [_as_array(ids) for ids in encode_texts(self.tokenizer, texts)]
        return [self._encode_fast(text) for text in texts]

    def _encode_fast(self, text: str) -> np.ndarray | Exception:
        try:
            return np.array(self._ordinary(text), dtype=np.uint32)
        except UnicodeEncodeError:
            # Not valid Unicode (a lone surrogate): HF's own error, as if tiktoken were not here.
            return _as_array(_encode_one(self.tokenizer, text))


def _as_array(ids: list[int] | Exception) -> np.ndarray | Exception:
    return ids if isinstance(ids, Exception) else np.array(ids, dtype=np.uint32)


@functools.lru_cache(maxsize=2)
def document_encoder(path: str, sha256: str) -> DocumentEncoder:
    """Loaded once per process (shared by its threads); the checksum in the key reloads a replaced
    file."""
    return DocumentEncoder(load_document_tokenizer(path))


def encoder_choice(path: str | Path, sha256: str) -> dict[str, str]:
    """The manifest's `encoder` section ({engine, reason}), also logged: which engine encodes."""
    summary = document_encoder(str(path), sha256).choice.summary()
    log.info("tokenize: encoding with %s (%s)", summary["engine"], summary["reason"])
    return summary


def read_document_batches(path: str, batch_documents: int) -> Iterator[DocumentBatch]:
    """The shard's rows re-batched to `batch_documents`, whatever its record batch sizes."""
    pending = DocumentBatch()
    for batch in arrow_batches(path):
        pending.extend(batch)
        while len(pending.ids) >= batch_documents:
            yield _take(pending, batch_documents)
    if pending.ids:
        yield pending


def _take(pending: DocumentBatch, n: int) -> DocumentBatch:
    head = DocumentBatch(pending.ids[:n], pending.urls[:n], pending.texts[:n], pending.nbytes[:n])
    del pending.ids[:n], pending.urls[:n], pending.texts[:n], pending.nbytes[:n]
    return head


class UnitEncoder:
    """Encodes one input shard's documents into per-split buffers, rejecting what it cannot."""

    def __init__(self, job: EncodeJob, rejected: RejectedLedger):
        self.job, self.rejected = job, rejected
        self.encoder = document_encoder(str(local_file(job.tokenizer_path)), job.tokenizer_sha256)
        self.splits = {s: SplitBuffer(job.dtype, job.eod_id) for s in SPLITS}
        self.records_in = 0

    def encode_batch(self, batch: DocumentBatch) -> None:
        self.records_in += len(batch.ids)
        keep = [i for i in range(len(batch.ids)) if self._acceptable(batch, i)]
        results = self.encoder.encode([batch.texts[i] for i in keep])
        by_split: dict[str, tuple[list, list, list]] = {s: ([], [], []) for s in SPLITS}
        for i, ids in zip(keep, results):
            if isinstance(ids, Exception):
                detail = f"{type(ids).__name__}: {ids}"
                self.rejected.reject(batch.ids[i], batch.urls[i], "encode_error", detail)
                continue
            doc_ids, token_ids, nbytes = by_split[split_of(batch.ids[i], self.job.val_fraction)]
            doc_ids.append(batch.ids[i])
            token_ids.append(ids)
            nbytes.append(batch.nbytes[i])
        for split, (doc_ids, token_ids, nbytes) in by_split.items():
            if doc_ids:
                self.splits[split].add(doc_ids, token_ids, nbytes)

    def _acceptable(self, batch: DocumentBatch, i: int) -> bool:
        if batch.ids[i] is None:
            self.rejected.reject(None, batch.urls[i], "missing_id", "the split needs an id")
        elif not batch.texts[i]:
            self.rejected.reject(batch.ids[i], batch.urls[i], "empty_text")
        else:
            return True
        return False


def _remove_stale(job: EncodeJob, stage_dir: Path) -> None:
    """Outputs of an earlier, interrupted attempt at this unit."""
    for split in SPLITS:
        (stage_dir / split / f"{job.unit}.arrow").unlink(missing_ok=True)
        (stage_dir / split / f"{job.unit}{INDEX_SUFFIX}").unlink(missing_ok=True)
    for stale in (stage_dir / "rejected").glob(f"{job.unit}-*.arrow"):
        stale.unlink()


def encode_shard(job: EncodeJob) -> dict[str, Any]:
    """Encode one input shard, write its token shards and mark the unit finished."""
    stage_dir = Path(job.stage_dir)
    _remove_stale(job, stage_dir)
    rejected = RejectedLedger(stage_dir, job.unit, STAGE)
    encoder = UnitEncoder(job, rejected)
    try:
        for batch in read_document_batches(str(local_file(job.input_path)), job.batch_documents):
            encoder.encode_batch(batch)
    except (OSError, pa.ArrowException, KeyError) as exc:
        # An unreadable shard must not stop the run: it is recorded as one rejected record.
        rejected.abort()
        rejected = RejectedLedger(stage_dir, job.unit, STAGE)
        detail = str(exc) if isinstance(exc, UNREADABLE) else repr(exc)  # the file, what to do
        rejected.reject(None, Path(job.input_path).name, "unreadable_shard", detail)
        encoder = UnitEncoder(job, rejected)
        encoder.records_in = 1
    shards = {s: encoder.splits[s].write(stage_dir / s, job.unit) for s in SPLITS}
    info = {
        "input": Path(job.input_path).name,
        "records_in": encoder.records_in,
        "documents": sum(len(buf.ids) for buf in encoder.splits.values()),
        "rejected": rejected.rows,
        "reasons": dict(rejected.reasons),
        "splits": shards,
        "rejected_shards": rejected.close(),
    }
    UnitLedger(stage_dir).mark_finished(job.unit, info)
    return info
