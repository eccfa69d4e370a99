"""The byte-level BPE tokenizer: training from an iterator, reuse, validation and its facts.

Byte-level means the base alphabet is the 256 bytes, so there is no unknown token and any text
round-trips exactly. Document text is always encoded with `encode_special_tokens = True`: a web
page that literally contains `<|endoftext|>` must not inject an end-of-document token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from pipeline.core.stage import atomic_path, file_sha256

# Order fixed by the token shard contract: ids 0..5 right after training.
SPECIAL_TOKENS = {
    "eod": "<|endoftext|>",
    "pad": "<|pad|>",
    "system": "<|system|>",
    "user": "<|user|>",
    "assistant": "<|assistant|>",
    "end": "<|end|>",
}
EOD, PAD = SPECIAL_TOKENS["eod"], SPECIAL_TOKENS["pad"]
TOKENIZER_FILE = "tokenizer.json"
VOCAB_MULTIPLE = 64  # model embedding rows are padded to a multiple of 64 (matmul-friendly)
# Bytes that trip up tokenizers which are not byte-level: accents, CJK, emoji, controls, NUL.
ROUNDTRIP_PROBE = "Grüße, 世界! 🙂🏳️‍🌈 \x00\x07\t\r\n  x\u200b <|endoftext|>\uffff"


def new_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE tokenizer (GPT-2 style pre-tokenization, no normalizer)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(texts: Iterator[list[str]], vocab_size: int, min_frequency: int) -> Tokenizer:
    """Train on batches of texts streamed from the shards (the corpus is never held whole)."""
    tokenizer = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def reuse_tokenizer(path: str | Path) -> Tokenizer:
    """Load an existing tokenizer.json; special tokens it lacks are appended to its vocabulary."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`tokenize.tokenizer_path`: no file at {path}")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ValueError(
            f"`tokenize.tokenizer_path`: {path} is not a tokenizer.json: {exc}"
        ) from exc
    missing = [t for t in SPECIAL_TOKENS.values() if tokenizer.token_to_id(t) is None]
    if missing:
        tokenizer.add_special_tokens(missing)
    check_roundtrip(tokenizer, origin=str(path))
    return tokenizer


def check_roundtrip(tokenizer: Tokenizer, origin: str) -> None:
    """A clear error for tokenizers that lose text (normalizers, unknown tokens, not byte-level)."""
    tokenizer.encode_special_tokens = True
    decoded = tokenizer.decode(tokenizer.encode(ROUNDTRIP_PROBE).ids, skip_special_tokens=False)
    if decoded != ROUNDTRIP_PROBE:
        raise ValueError(
            f"`tokenize.tokenizer_path`: {origin} does not round-trip text "
            f"({ROUNDTRIP_PROBE!r} came back as {decoded!r}); a byte-level BPE tokenizer is needed"
        )


def save_tokenizer(tokenizer: Tokenizer, stage_dir: Path) -> Path:
    """Write `tokenizer.json` atomically (a killed run never leaves a torn tokenizer)."""
    path = Path(stage_dir) / TOKENIZER_FILE
    with atomic_path(path) as tmp:
        tokenizer.save(str(tmp))
    return path


def load_document_tokenizer(path: str | Path) -> Tokenizer:
    """A tokenizer set up to encode document text (special-token strings stay plain text)."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.encode_special_tokens = True
    return tokenizer


def padded_size(n: int, multiple: int = VOCAB_MULTIPLE) -> int:
    return -(-n // multiple) * multiple


def tokenizer_info(path: Path) -> dict[str, Any]:
    """The manifest's `tokenizer` section: path, fingerprint, sizes and special token ids."""
    tokenizer = Tokenizer.from_file(str(path))
    # Ids may have gaps in a reused tokenizer: the model needs max id + 1 embedding rows.
    vocab_size = max(tokenizer.get_vocab(with_added_tokens=True).values()) + 1
    special = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS.values()}
    return {
        "path": TOKENIZER_FILE,
        "fingerprint": file_sha256(path),
        "vocab_size": vocab_size,
        "padded_vocab_size": padded_size(vocab_size),
        "eod_id": special[EOD],
        "pad_id": special[PAD],
        "special_tokens": special,
    }


def token_dtype(padded_vocab_size: int) -> str:
    """uint16 halves the shards whenever every id fits in 16 bits."""
    return "uint16" if padded_vocab_size <= 2**16 else "uint32"
