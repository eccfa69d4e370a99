"""The encoding engine: tiktoken's BPE on the trained vocabulary when it gives HF's ids, else HF.

`tokenizer.json` (HF `tokenizers`) stays the tokenizer of record: it is what the model ships with.
Document text is encoded by tiktoken's Rust engine (6x HF's `encode_batch` on the benchmark
corpus) built from the same vocabulary, when the vocabulary can be expressed there exactly.

Why the ids are the same (each point is checked, a failed check means HF encodes instead):
- Pre-tokenization: HF's ByteLevel pre-tokenizer splits with GPT-2's pattern (`BYTE_LEVEL_PATTERN`,
  copied from tokenizers' byte_level.rs); tiktoken gets the same pattern. Their regex engines
  (Oniguruma, fancy-regex) classify every code point alike as letter / number / space / other:
  tests/tokenize/test_engine.py checks all of Unicode.
- BPE: HF merges the adjacent pair earliest in its merge list; tiktoken merges the adjacent pair
  whose concatenation has the lowest rank. With rank = id the two agree when ids follow the merge
  order, every token is made by exactly one merge of two tokens with smaller ids (what the BPE
  trainer writes), and every token's own bytes encode to that token (tiktoken looks a whole piece
  up before merging).
- Special tokens: HF encodes documents with `encode_special_tokens = True` and tiktoken gets no
  special tokens, so `<|endoftext|>` in a page is plain text in both. Other added tokens would be
  matched by HF inside text: such a tokenizer is encoded by HF.
- Text that is not valid Unicode (lone surrogates) raises in both; the caller rejects it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer

# tokenizers/src/pre_tokenizers/byte_level.rs; tiktoken's r50k pattern is the same regex.
BYTE_LEVEL_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
BYTE_LEVEL_PRE_TOKENIZER = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
# BPE model options under which HF's algorithm is plain merge-priority BPE.
PLAIN_BPE = {
    "dropout": None,
    "continuing_subword_prefix": (None, ""),
    "end_of_word_suffix": (None, ""),
    "byte_fallback": (False, None),
    "ignore_merges": (False, None),
}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, the alphabet of byte-level BPE vocabularies."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@dataclass(frozen=True)
class EngineChoice:
    """Which engine encodes documents, and why (the manifest's `encoder` section)."""

    engine: str
    """`tiktoken` or `tokenizers`."""
    reason: str
    ranks: dict[bytes, int] | None = None

    def summary(self) -> dict[str, str]:
        return {"engine": self.engine, "reason": self.reason}


class Inexpressible(ValueError):
    """The vocabulary or its settings have no exact tiktoken equivalent; the message says why."""


def choose_engine(tokenizer: Tokenizer) -> EngineChoice:
    """tiktoken with the tokenizer's BPE ranks when they give the same ids, else HF tokenizers."""
    try:
        ranks = tiktoken_ranks(tokenizer)
    except Inexpressible as exc:
        return EngineChoice("tokenizers", f"not expressible in tiktoken: {exc}")
    return EngineChoice("tiktoken", "same ranks and split pattern as tokenizer.json", ranks)


def tiktoken_ranks(tokenizer: Tokenizer) -> dict[bytes, int]:
    """The vocabulary as tiktoken's `mergeable_ranks` (token bytes -> id); raises Inexpressible."""
    spec = json.loads(tokenizer.to_str())
    _check_pipeline(spec)
    if spec.get("added_tokens") and not tokenizer.encode_special_tokens:
        raise Inexpressible("special tokens are matched inside text (encode_special_tokens off)")
    model = spec["model"]
    added = {t["content"] for t in spec.get("added_tokens", [])}
    vocab = {t: i for t, i in model["vocab"].items() if t not in added}
    ranks = _byte_ranks(vocab)
    _check_merges(vocab, [_merge_pair(m) for m in model["merges"]])
    _check_self_encoding(tokenizer, vocab)
    return ranks


def _check_pipeline(spec: dict[str, Any]) -> None:
    if spec.get("normalizer") is not None:
        raise Inexpressible(f"a normalizer ({spec['normalizer'].get('type')})")
    pre = spec.get("pre_tokenizer") or {}
    if {k: pre.get(k) for k in BYTE_LEVEL_PRE_TOKENIZER} != BYTE_LEVEL_PRE_TOKENIZER:
        raise Inexpressible(f"pre-tokenizer {pre} is not ByteLevel without prefix space")
    model = spec["model"]
    if model.get("type") != "BPE":
        raise Inexpressible(f"model {model.get('type')} is not BPE")
    for key, plain in PLAIN_BPE.items():
        if model.get(key) not in (plain if isinstance(plain, tuple) else (plain,)):
            raise Inexpressible(f"BPE option {key}={model.get(key)!r}")
    matched = [t["content"] for t in spec.get("added_tokens", []) if not t.get("special")]
    if matched:
        raise Inexpressible(f"added tokens that HF matches inside text: {matched[:5]}")


def _byte_ranks(vocab: dict[str, int]) -> dict[bytes, int]:
    to_byte = {ch: b for b, ch in bytes_to_unicode().items()}
    missing = [b for b, ch in bytes_to_unicode().items() if ch not in vocab]
    if missing:
        raise Inexpressible(f"{len(missing)} of the 256 bytes have no token (e.g. {missing[0]})")
    try:
        ranks = {bytes(to_byte[ch] for ch in token): i for token, i in vocab.items()}
    except KeyError as exc:
        raise Inexpressible(f"a token has a character outside the byte alphabet: {exc}") from None
    if len(ranks) != len(vocab) or len(set(ranks.values())) != len(ranks):
        raise Inexpressible("two tokens share bytes or an id")
    return ranks


def _merge_pair(merge: str | list[str]) -> tuple[str, str]:
    # tokenizer.json writes merges as "a b" (older) or ["a", "b"] (tokenizers >= 0.20).
    left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
    return left, right


def _check_merges(vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    """Ids in merge order; every multi-byte token made by one merge of two smaller ids."""
    made: set[str] = set()
    last = -1
    for left, right in merges:
        token = left + right
        ids = [vocab.get(left), vocab.get(right), vocab.get(token)]
        if None in ids or token in made:
            raise Inexpressible(f"merge {left!r} {right!r} is not one merge of vocabulary tokens")
        if not max(ids[0], ids[1], last) < ids[2]:
            raise Inexpressible(f"token ids are not in merge order at {token!r}")
        made.add(token)
        last = ids[2]
    unmade = [t for t in vocab if len(t) > 1 and t not in made]
    if unmade:
        raise Inexpressible(f"{len(unmade)} tokens no merge makes (e.g. {unmade[0]!r})")


def _check_self_encoding(tokenizer: Tokenizer, vocab: dict[str, int]) -> None:
    """HF's BPE turns each token's own characters into that token, as tiktoken's lookup does."""
    for token, i in vocab.items():
        got = [t.id for t in tokenizer.model.tokenize(token)]
        if got != [i]:
            raise Inexpressible(f"token {token!r} encodes to {got} by its merges, not [{i}]")


def tiktoken_encoding(ranks: dict[bytes, int]):
    """tiktoken's engine on these ranks, with no special tokens (all of a document is text)."""
    import tiktoken

    return tiktoken.Encoding(
        "lmpipe-bpe", pat_str=BYTE_LEVEL_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )
