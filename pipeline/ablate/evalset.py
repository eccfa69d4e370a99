"""The fixed evaluation set and bits-per-byte scoring of a proxy model on it.

The eval set is the base corpus's documents (`<base>/dedup/`) whose id hash falls below
`ablate.eval_fraction`. Every variant tokenizes with `tokenize.val_fraction` equal to it, and the
split depends on the id alone (`pipeline.tokenize.shards.split_of`), so no variant's train split
holds an eval document. Bits per byte divide the summed token NLL (nats / ln 2) by the text's
UTF-8 bytes, so the score does not depend on the tokenizer.
"""

from __future__ import annotations

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


def eval_set_fingerprint(docs: list[EvalDoc]) -> str:
    return fingerprint([d.id for d in docs])


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
