"""Token shards in the tokenize stage's contract, built from the sample corpus for these tests.

The real tokenize stage is tested on its own; here the shards come from a small helper so the
training tests depend only on the contract: `<run>/tokenize/tokenizer.json`, `{train,val}/
shard-NNNNN.arrow` (one uncompressed record batch, one uint16/uint32 `tokens` column, every
document followed by EOD) with `shard-NNNNN.index.arrow`, and `manifest.json` with `tokenizer`.
"""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
from resiliparse.extract.html2text import extract_plain_text
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from pipeline.core.stage import fingerprint, write_manifest
from pipeline.ingest import IngestConfig, run_ingest
from tests.conftest import SAMPLE_WARC

SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]


def sample_documents(work_dir: Path, max_chars: int) -> list[str]:
    """Main-content text of the Python-docs pages of the bundled sample, up to `max_chars`."""
    run_ingest(IngestConfig(workers=1), [str(SAMPLE_WARC)], work_dir / "ingest")
    files = sorted(glob.glob(str(work_dir / "ingest" / "*.arrow")))
    table = ds.dataset(files, format="arrow").to_table(columns=["raw"])
    docs, total = [], 0
    for html in table.column("raw").to_pylist():
        text = extract_plain_text(html, main_content=True)
        if len(text) > 200:
            docs.append(text)
            total += len(text)
        if total >= max_chars:
            break
    return docs


def train_tokenizer(docs: list[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE with the pipeline's special tokens (EOD first, id 0)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer)
    return tok


def write_split(directory: Path, docs_ids: list[list[int]], eod: int, per_shard: int) -> None:
    """Documents (token id lists) into shards of `per_shard` documents, each doc then EOD."""
    directory.mkdir(parents=True, exist_ok=True)
    for n, start in enumerate(range(0, len(docs_ids), per_shard)):
        chunk = docs_ids[start : start + per_shard]
        tokens = np.concatenate([np.append(np.asarray(d, dtype=np.uint16), eod) for d in chunk])
        table = pa.table({"tokens": pa.array(tokens, type=pa.uint16())})
        with pa.ipc.new_file(str(directory / f"shard-{n:05d}.arrow"), table.schema) as w:
            w.write_batch(table.to_batches(max_chunksize=len(tokens))[0])
        lengths = [len(d) + 1 for d in chunk]
        index = pa.table(
            {
                "id": [f"doc-{start + i}" for i in range(len(chunk))],
                "start": np.cumsum([0, *lengths[:-1]]).astype(np.int64),
                "length": np.asarray(lengths, dtype=np.int64),
            }
        )
        with pa.ipc.new_file(str(directory / f"shard-{n:05d}.index.arrow"), index.schema) as w:
            w.write_table(index)


def build_tokenize_dir(
    run_dir: Path, vocab_size: int = 2048, per_shard: int = 60, max_chars: int = 2_500_000
) -> Path:
    """`<run_dir>/tokenize/` from the sample: every 10th document is validation."""
    docs = sample_documents(run_dir, max_chars)
    tok = train_tokenizer(docs, vocab_size)
    out = run_dir / "tokenize"
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    eod, pad = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|pad|>")
    ids = [e.ids for e in tok.encode_batch(docs)]
    write_split(out / "train", [d for i, d in enumerate(ids) if i % 10], eod, per_shard)
    write_split(out / "val", [d for i, d in enumerate(ids) if i % 10 == 0], eod, per_shard)
    padded = -(-tok.get_vocab_size() // 64) * 64
    info = {
        "path": str(out / "tokenizer.json"),
        "fingerprint": fingerprint(tok.to_str()),
        "vocab_size": tok.get_vocab_size(),
        "padded_vocab_size": padded,
        "eod_id": eod,
        "pad_id": pad,
        "special_tokens": {t: tok.token_to_id(t) for t in SPECIAL_TOKENS},
    }
    digest = hashlib.sha256(b"".join(np.asarray(d, np.uint16).tobytes() for d in ids))
    write_manifest(out, stage="tokenize", tokenizer=info, output_fingerprint=digest.hexdigest())
    return out


def unigram_entropy(tokenize_dir: Path, split: str = "train") -> float:
    """Entropy (nats/token) of the split's token frequencies: the loss of the best unigram model."""
    paths = sorted((tokenize_dir / split).glob("shard-?????.arrow"))
    tokens = np.concatenate(
        [pa.ipc.open_file(str(p)).get_batch(0).column(0).to_numpy() for p in paths]
    )
    counts = np.bincount(tokens)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
