"""A labeled near-duplicate set built from real pages, and clean-shaped shards to dedup them.

Used by tests/dedup and benchmarks/dedup_quality.py. Base documents are real pages (the bundled
Python docs WARC, the tests' web captures) reduced to text with resiliparse's html2text, the same
kind of text the clean stage produces. From each base page two variants are built with the edits
near-duplicates show on the web:

- `exact_copy`: the same text, re-wrapped (other line breaks and indentation);
- `other_navigation`: the page on a mirror: its header navigation lines replaced by another
  site's, a mirror footer added;
- `paragraphs_removed`: 1 to 40 % of the paragraphs (blank-line separated blocks) dropped;
- `numbers_changed`: every number replaced by another one;
- `words_edited`: 1 to 8 % of the words replaced by words from another page (edits spread over
  the page, the hardest case for 5-gram shingles: one edit touches 5 shingles).

Labeled pairs are (base, variant), (variant, variant) and two kinds of non-duplicates: each page
with the most similar *other* page of the set (same site, same template, often the same topic:
the hardest negatives) and random page pairs. The label of a pair is not its construction but its
ground truth: the true Jaccard similarity of the two documents' word 5-gram shingle sets (after
the same normalization dedup uses, `shingles.document_features`, computed exactly on the full
sets) compared with `threshold` (0.75: the similarity FineWeb's 14 x 8 bands target).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.clean.run import CLEAN_SCHEMA  # the shards written here are clean-shaped
from pipeline.core.stage import fingerprint, write_manifest
from pipeline.dedup.shingles import document_features, jaccard, shingle_sets

"""The clean stage's output columns (ARCHITECTURE.md), plus an extra column dedup must pass on."""

MIRROR_HEADER = (
    "DocsMirror\nHome | Search | Languages | Libraries | Sign in\n"
    "You are reading a mirrored copy. Report a problem with this mirror\n"
)
MIRROR_FOOTER = "\nMirrored by DocsMirror. Content licensed by its authors. Privacy | Terms\n"
_NUMBER = re.compile(r"\d+")


def exact_copy(text: str, rng: random.Random) -> str:
    return "\n\n".join("  " + " ".join(line.split()) for line in text.splitlines() if line.strip())


def other_navigation(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    # The header navigation ends where running text starts: the first line of 8+ words.
    start = next((i for i, line in enumerate(lines) if len(line.split()) >= 8), 0)
    return MIRROR_HEADER + "\n".join(lines[start:]) + MIRROR_FOOTER


def paragraphs_removed(text: str, rng: random.Random) -> str:
    paragraphs = text.split("\n\n")
    drop = max(1, round(len(paragraphs) * rng.uniform(0.01, 0.4)))
    dropped = set(rng.sample(range(len(paragraphs)), min(drop, len(paragraphs) - 1)))
    return "\n\n".join(p for i, p in enumerate(paragraphs) if i not in dropped)


def numbers_changed(text: str, rng: random.Random) -> str:
    return _NUMBER.sub(lambda m: str(int(m.group()) + rng.randint(1, 99)), text)


def words_edited(text: str, rng: random.Random, donor: str = "") -> str:
    words, pool = text.split(" "), donor.split() or ["lorem"]
    for i in rng.sample(range(len(words)), int(len(words) * rng.uniform(0.01, 0.08))):
        words[i] = rng.choice(pool)
    return " ".join(words)


VARIANTS = {
    "exact_copy": exact_copy,
    "other_navigation": other_navigation,
    "paragraphs_removed": paragraphs_removed,
    "numbers_changed": numbers_changed,
    "words_edited": words_edited,
}


@dataclass
class Doc:
    id: str
    url: str
    text: str | None
    kind: str = "base"
    base: str | None = None


@dataclass
class LabeledPair:
    a: str
    b: str
    kind: str
    jaccard: float


def build_variants(bases: list[Doc], seed: int = 0) -> list[Doc]:
    """Two variants of each base document, of two different kinds chosen at random."""
    rng = random.Random(seed)
    out = []
    for n, doc in enumerate(bases):
        for k, kind in enumerate(rng.sample(sorted(VARIANTS), 2)):
            donor = bases[(n + 1) % len(bases)].text
            edit = VARIANTS[kind]
            text = edit(doc.text, rng, donor) if kind == "words_edited" else edit(doc.text, rng)
            url = doc.url.replace("://", f"://mirror{k}.", 1)
            out.append(Doc(f"{doc.id}/{kind}", url, text, kind, doc.id))
    return out


def ground_truth_sets(docs: list[Doc], ngram_size: int = 5) -> dict[str, np.ndarray]:
    """Sorted distinct shingle hashes per document id (the ground-truth sets)."""
    sets = {}
    for lo in range(0, len(docs), 64):
        part = docs[lo : lo + 64]
        batch = document_features([d.text for d in part], ngram_size, exact=False).shingles
        sets.update(zip((d.id for d in part), shingle_sets(batch)))
    return sets


def nearest_other(bases: list[Doc], sets: dict[str, np.ndarray]) -> list[tuple[int, int]]:
    """For each base page, the other base page sharing the most shingles (sparse A @ A.T)."""
    from scipy.sparse import csr_matrix

    vocab, columns = np.unique(np.concatenate([sets[d.id] for d in bases]), return_inverse=True)
    lengths = [len(sets[d.id]) for d in bases]
    rows = np.repeat(np.arange(len(bases)), lengths)
    incidence = csr_matrix((np.ones(len(rows)), (rows, columns)), (len(bases), len(vocab)))
    shared = (incidence @ incidence.T).toarray()  # (n, n) shingles in common
    sizes = np.array(lengths, dtype=np.float64)
    similarity = shared / np.maximum(sizes[:, None] + sizes[None, :] - shared, 1)
    np.fill_diagonal(similarity, -1.0)
    return [(i, int(j)) for i, j in enumerate(similarity.argmax(axis=1))]


def labeled_pairs(
    bases: list[Doc], variants: list[Doc], sets: dict[str, np.ndarray], seed: int = 0
) -> list[LabeledPair]:
    """Constructed pairs, hardest same-site pairs and random pairs, each with its true Jaccard."""
    rng = random.Random(seed)
    raw: list[tuple[str, str, str]] = []
    by_base: dict[str, list[Doc]] = {}
    for v in variants:
        by_base.setdefault(v.base, []).append(v)
    for doc in bases:
        pair = by_base[doc.id]
        raw += [(doc.id, v.id, v.kind) for v in pair]
        raw.append((pair[0].id, pair[1].id, "variant_pair"))
    raw += [(bases[i].id, bases[j].id, "nearest_other_page") for i, j in nearest_other(bases, sets)]
    for _ in range(len(bases)):
        i, j = rng.sample(range(len(bases)), 2)
        raw.append((bases[i].id, bases[j].id, "random_pages"))
    return [LabeledPair(a, b, kind, jaccard(sets[a], sets[b])) for a, b, kind in raw]


def score(pairs: list[LabeledPair], cluster_of: dict[str, str], threshold: float) -> dict:
    """Precision, recall and F1 of "same cluster" against "true Jaccard >= threshold"."""
    tp = fp = fn = tn = 0
    for p in pairs:
        truth = p.jaccard >= threshold
        found = p.a in cluster_of and cluster_of.get(p.a) == cluster_of.get(p.b)
        tp, fp = tp + (truth and found), fp + (found and not truth)
        fn, tn = fn + (truth and not found), tn + (not truth and not found)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def cluster_map(dedup_dir: Path) -> dict[str, str]:
    """Document id -> cluster id from a dedup stage's `clusters/` (documents in clusters of 2+)."""
    out = {}
    for path in sorted((Path(dedup_dir) / "clusters").glob("*.arrow")):
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        out.update(zip(table.column("id").to_pylist(), table.column("cluster_id").to_pylist()))
    return out


def load_pages(warcs: list[str], work_dir: Path, min_words: int = 20) -> list[Doc]:
    """Real pages: ingested with run_ingest, HTML reduced to text with resiliparse html2text."""
    from resiliparse.extract.html2text import extract_plain_text

    from pipeline.core.stage import list_shards
    from pipeline.ingest import IngestConfig, run_ingest

    ingest_dir = Path(work_dir) / "ingest"
    run_ingest(IngestConfig(workers=1), warcs, ingest_dir)
    docs = []
    for shard in list_shards(ingest_dir):
        table = pa.ipc.open_file(pa.memory_map(str(shard))).read_all()
        for id_, url, raw in zip(*(table.column(c).to_pylist() for c in ("id", "url", "raw"))):
            text = extract_plain_text(raw or "")
            if len(text.split()) >= min_words:
                docs.append(Doc(id_, url, text))
    return docs


def write_clean_run(clean_dir: Path, docs: list[Doc], shard_rows: int = 200) -> Path:
    """`docs` as clean-stage shards `part-NNNNN.arrow` plus a finished-stage manifest."""
    from pipeline.core.stage import ShardWriter

    clean_dir = Path(clean_dir)
    clean_dir.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(clean_dir, "part", CLEAN_SCHEMA, max_records=shard_rows)
    fetched = datetime(2024, 5, 1, tzinfo=UTC)
    for n, doc in enumerate(docs):
        row = {"id": doc.id, "url": doc.url, "source": "labeled", "fetch_date": fetched}
        row |= {"content_type": "text/html", "text": doc.text, "language": "en"}
        writer.write(row | {"language_score": 0.99, "pii_emails": n % 3}, len(doc.text or ""))
    shards = writer.close()
    counts = {"records_in": len(docs), "documents": len(docs), "rejected": 0}
    out_fp = fingerprint([shards, [d.id for d in docs], [len(d.text or "") for d in docs]])
    write_manifest(clean_dir, stage="clean", counts=counts, output_fingerprint=out_fp)
    return clean_dir
