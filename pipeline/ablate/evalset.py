"""The fixed evaluation set and bits-per-byte scoring of a proxy model on it.

By default the eval set is the base corpus's documents (its last corpus stage, `<base>/dedup/`
or `<base>/quality/`) whose id hash falls below `ablate.eval_fraction`. Every variant tokenizes
with `tokenize.val_fraction` equal to it, and the split depends on the id alone
(`pipeline.tokenize.shards.split_of`), so no variant's train split holds an eval document.

With `ablate.eval_set` the eval set is the user's files instead (JSONL with a text field, or
Parquet), the same documents for every variant whatever its data keeps. Keeping them out of the
training data is then the user's part: `eval_overlap` counts, per variant, the eval documents
whose id or text occurs in its corpus, and the report shows the count.

Bits per byte divide the summed token NLL (nats / ln 2) by the text's UTF-8 bytes, so the score
does not depend on the tokenizer.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.shard_io import read_arrow
from pipeline.core.stage import fingerprint
from pipeline.tokenize.shards import id_fraction

IGNORE = -100  # cross_entropy's ignore_index


@dataclass(frozen=True)
class EvalDoc:
    id: str
    text: str


def eval_documents(dedup_dir: Path, fraction: float, max_documents: int = 0) -> list[EvalDoc]:
    """The base corpus's held-out documents, ordered by id hash (stable across runs)."""
    # Only the stage's top-level shards: `clusters/`, `index/` and `rejected/` hold other tables.
    tables = [read_arrow(p, ["id", "text"]) for p in sorted(Path(dedup_dir).glob("*.arrow"))]
    docs = [
        EvalDoc(i, t)
        for table in tables
        for i, t in zip(table["id"].to_pylist(), table["text"].to_pylist(), strict=True)
        if i and t and id_fraction(i) < fraction
    ]
    docs.sort(key=lambda d: id_fraction(d.id))
    docs = docs[:max_documents] if max_documents else docs
    if len(docs) < 2:
        raise ValueError(
            f"only {len(docs)} eval document(s) in {dedup_dir} below id fraction {fraction}:"
            " raise `ablate.eval_fraction`"
        )
    return docs


class EvalSetError(ValueError):
    """A user eval file that cannot serve as the eval set; the message names the file."""


def _text_digest(text: str) -> str:
    """Digest of a text with its whitespace runs collapsed (as extraction may differ in them)."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:32]


def eval_files(patterns: list[str]) -> list[Path]:
    """`ablate.eval_set`'s files: each entry a path or a glob; a missing one is an error."""
    files: list[Path] = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found or not all(Path(f).is_file() for f in found):
            missing = next((f for f in found if not Path(f).is_file()), pattern)
            if Path(missing).is_dir():
                raise EvalSetError(
                    f"ablate.eval_set: {missing} is a directory: name its files (or a glob)"
                )
            raise EvalSetError(f"ablate.eval_set: file not found: {missing}")
        files += [Path(f) for f in found]
    return files


def _records(path: Path, field: str) -> list[tuple[str, str]]:
    """(id, text) of every record of one eval file; a record without a non-empty string text is
    an error naming the file and the line (row): an eval set loses no document silently."""
    where = f"ablate.eval_set: {path}"
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        if field not in names:
            raise EvalSetError(
                f"{where} has no `{field}` column (ablate.eval_text_field); columns: {names}"
            )
        table = pq.read_table(path, columns=[field] + (["id"] if "id" in names else []))
        texts = table[field].to_pylist()
        ids = table["id"].to_pylist() if "id" in names else [None] * len(texts)
        rows = [(i, t, f"row {n}") for n, (i, t) in enumerate(zip(ids, texts, strict=True))]
    elif path.name.endswith((".jsonl", ".jsonl.gz", ".json")):
        import gzip

        opener = gzip.open if path.name.endswith(".gz") else open
        rows = []
        with opener(path, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise EvalSetError(f"{where} line {n} is not JSON: {err}") from None
                if not isinstance(record, dict):
                    raise EvalSetError(f"{where} line {n} is not a JSON object")
                rows.append((record.get("id"), record.get(field), f"line {n}"))
    else:
        raise EvalSetError(f"{where}: not a JSONL (.jsonl, .jsonl.gz) or Parquet file")
    out = []
    for doc_id, text, at in rows:
        if not isinstance(text, str) or not text.strip():
            raise EvalSetError(
                f"{where} {at} has no `{field}` text (ablate.eval_text_field names the field)"
            )
        out.append((str(doc_id) if doc_id else _text_digest(text), text))
    return out


def file_documents(
    patterns: list[str], field: str = "text", max_documents: int = 0
) -> list[EvalDoc]:
    """The user's eval documents, in file order (the first `max_documents`; 0 = all). A record's
    id is its `id` field, else its text's digest."""
    docs = [EvalDoc(i, t) for path in eval_files(patterns) for i, t in _records(path, field)]
    docs = docs[:max_documents] if max_documents else docs
    if len(docs) < 2:
        raise EvalSetError(
            f"ablate.eval_set: {', '.join(patterns)} holds {len(docs)} document(s); the paired"
            " bootstrap needs at least 2"
        )
    return docs


def eval_set_fingerprint(docs: list[EvalDoc], by_text: bool = False) -> str:
    """The eval set's identity: its ids (a slice of the base corpus: an id names its text), or
    with `by_text` its ids and texts (a user's file may change a text under the same id)."""
    if by_text:
        return fingerprint([[d.id, _text_digest(d.text)] for d in docs])
    return fingerprint([d.id for d in docs])


def eval_overlap(corpus_dir: Path, docs: list[EvalDoc]) -> int:
    """How many eval documents occur in a corpus (`<run>/<corpus stage>/`): same id or same text
    (whitespace aside). Near-copies are not counted: the decontaminate stage finds those."""
    ids = {d.id for d in docs}
    digests = {_text_digest(d.text): d.id for d in docs}
    found: set[str] = set()
    for path in sorted(Path(corpus_dir).glob("*.arrow")):
        table = read_arrow(path, ["id", "text"])
        for i, t in zip(table["id"].to_pylist(), table["text"].to_pylist(), strict=True):
            if i in ids:
                found.add(i)
            elif t and (hit := digests.get(_text_digest(t))):
                found.add(hit)
    return len(found)


def _windows(ids: list[int], eod: int, block: int) -> list[tuple[list[int], list[int]]]:
    """(inputs, targets) chunks of one document: context starts at EOD, as after a document
    boundary in training; chunks do not overlap, so each token is scored once."""
    seq, last = [eod, *ids], len(ids)  # inputs end before the final token
    return [
        (seq[s : min(s + block, last)], seq[s + 1 : s + block + 1]) for s in range(0, last, block)
    ]


def score_documents(
    model_dir: Path, tokenizer_path: Path, docs: list[EvalDoc], batch: int = 16
) -> dict[str, list[float]]:
    """Per document: summed NLL in nats of its tokens and its UTF-8 bytes."""
    import torch
    import torch.nn.functional as F

    from pipeline.model import load_model
    from pipeline.tokenize.tokenizer import EOD, load_document_tokenizer

    model = load_model(Path(model_dir)).eval()
    block = model.config.block_size
    tok = load_document_tokenizer(tokenizer_path)
    eod = tok.token_to_id(EOD)
    chunks = []  # (doc index, inputs, targets)
    for i, doc in enumerate(docs):
        chunks += [(i, x, y) for x, y in _windows(tok.encode(doc.text).ids, eod, block)]
    nll = np.zeros(len(docs))
    with torch.no_grad():
        for start in range(0, len(chunks), batch):
            part = chunks[start : start + batch]
            inputs = torch.zeros(len(part), block, dtype=torch.long)  # (B, T)
            labels = torch.full((len(part), block), IGNORE, dtype=torch.long)  # (B, T)
            for row, (_, x, y) in enumerate(part):
                inputs[row, : len(x)] = torch.tensor(x)
                labels[row, : len(y)] = torch.tensor(y)
            logits = model(inputs).float()  # (B, T, V)
            loss = F.cross_entropy(
                logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none"
            )  # (B, T)
            for row, (doc, _, _) in enumerate(part):
                nll[doc] += float(loss[row].sum())
    nbytes = [len(d.text.encode("utf-8")) for d in docs]
    return {"nll_nats": nll.tolist(), "bytes": [float(b) for b in nbytes]}


def bits_per_byte(nll_nats: np.ndarray, nbytes: np.ndarray) -> float:
    """Summed NLL in bits over summed bytes."""
    return float(np.sum(nll_nats) / math.log(2) / np.sum(nbytes))
