"""Tokenization: a byte-level BPE tokenizer and memory-mappable token shards (`run_tokenize`).

Input: the curated corpus `<run>/dedup/` (Arrow IPC shards with at least `id` and `text`).

The token shard contract (what training reads; `<run>/tokenize/` is the stage directory):

- `tokenizer.json`: an HF `tokenizers` byte-level BPE tokenizer (no unknown token: any text
  round-trips). Special tokens, in this order (ids 0..5 when trained here): `<|endoftext|>` (end
  of document, EOD), `<|pad|>`, `<|system|>`, `<|user|>`, `<|assistant|>`, `<|end|>`. A reused
  tokenizer (`tokenize.tokenizer_path`) keeps its ids; special tokens it lacks are appended.
  Document text is encoded with `encode_special_tokens = True`: a literal `<|endoftext|>` in a
  page is plain text, never an EOD id.
- `train/` and `val/`: shards `shard-NNNNN.arrow`: Arrow IPC *file* format, uncompressed, exactly
  one record batch with one column `tokens` (uint16 if the padded vocab size is <= 65536, else
  uint32): the token ids of the shard's documents concatenated, each document followed by EOD.
  Next to each, `shard-NNNNN.index.arrow` with columns `id` (string), `start` (int64), `length`
  (int64, EOD included), one row per document in token order. NNNNN is the position of the input
  shard (name order) the documents came from; a split gets no shard when an input shard has no
  document for it, so numbers can have gaps: list the files, do not count.
  Reading: `pa.ipc.open_file(pa.memory_map(path)).get_batch(0).column(0)
  .to_numpy(zero_copy_only=True)`, or `load_token_shards(split_dir)`.
- Split: a document is in `val` when blake2b-64(id) / 2**64 < `tokenize.val_fraction`: it depends
  on the id alone, so adding shards never moves a document between splits.
- `manifest.json`, besides the stage contract fields (counts, reasons, fingerprints...):
  `tokenizer` {path (relative to the stage dir), fingerprint (sha256 of tokenizer.json),
  vocab_size (max id + 1), padded_vocab_size (multiple of 64), eod_id, pad_id,
  special_tokens {token: id}}; `dtype` ("uint16" | "uint32"); `train` and `val`, each
  {tokens, documents, shards, text_bytes, shard_stats: [{shard, tokens, documents, text_bytes,
  sha256}]}; `bytes_per_token` (UTF-8 bytes of the documents per token, EODs not counted).
  `encoder` {engine: "tiktoken" | "tokenizers", reason}: which engine encoded the documents.
  tiktoken's BPE runs the same vocabulary when it gives exactly `tokenizer.json`'s ids
  (`pipeline/tokenize/engine.py` checks it), else HF `tokenizers` does; the ids are HF's either way.
- Rejected documents (`rejected/`): `missing_id`, `empty_text`, `encode_error`, and
  `unreadable_shard` (an input shard that cannot be read counts as one rejected record).
"""

from pipeline.tokenize.config import TokenizeConfig
from pipeline.tokenize.run import plan_tokenize, run_tokenize
from pipeline.tokenize.shards import (
    load_token_shard,
    load_token_shards,
    read_token_index,
    read_tokenizer_info,
    split_of,
    token_shard_paths,
)
from pipeline.tokenize.tokenizer import SPECIAL_TOKENS, load_document_tokenizer

__all__ = [
    "SPECIAL_TOKENS",
    "TokenizeConfig",
    "load_document_tokenizer",
    "load_token_shard",
    "load_token_shards",
    "read_token_index",
    "read_tokenizer_info",
    "plan_tokenize",
    "run_tokenize",
    "split_of",
    "token_shard_paths",
]
