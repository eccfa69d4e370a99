"""The tokenizer: contract special tokens, exact round-trips, reuse and refusal of lossy ones."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, normalizers, pre_tokenizers, trainers

from pipeline.tokenize import SPECIAL_TOKENS, TokenizeConfig, load_document_tokenizer, run_tokenize
from pipeline.tokenize.tokenizer import (
    new_tokenizer,
    padded_size,
    reuse_tokenizer,
    token_dtype,
    train_tokenizer,
)
from tests.tokenize.conftest import manifest, write_dedup_dir

EMOJI_CJK_CONTROL = list(
    "🙂👍🏽🏳️‍🌈🇩🇪漢字かなカナ한국어\x00\x01\x07\x1b\x7f\x85\u200b\u200d\u2028\ufeff\r\n\t "
)


def test_special_tokens_come_first_in_contract_order(sample_run):
    info = manifest(sample_run / "tokenize")["tokenizer"]
    tokenizer = Tokenizer.from_file(str(sample_run / "tokenize" / "tokenizer.json"))
    names = list(SPECIAL_TOKENS.values())
    assert names == [
        "<|endoftext|>",
        "<|pad|>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|end|>",
    ]
    assert [tokenizer.token_to_id(t) for t in names] == list(range(6))
    assert info["special_tokens"] == {t: i for i, t in enumerate(names)}
    assert (info["eod_id"], info["pad_id"]) == (0, 1)
    assert info["vocab_size"] == tokenizer.get_vocab_size() == 4096
    assert info["padded_vocab_size"] % 64 == 0 and info["padded_vocab_size"] >= info["vocab_size"]


def test_vocab_padding_and_dtype_choice():
    assert [padded_size(n) for n in (262, 4096, 4097, 50257)] == [320, 4096, 4160, 50304]
    assert token_dtype(65536) == "uint16" and token_dtype(65600) == "uint32"


def test_real_documents_round_trip_exactly(sample_tokenizer, sample_docs):
    tokenizer = load_document_tokenizer(sample_tokenizer)
    texts = [d["text"] for d in sample_docs]
    decoded = tokenizer.decode_batch([e.ids for e in tokenizer.encode_batch(texts)])
    assert decoded == texts


@pytest.fixture(scope="module")
def doc_tokenizer(sample_tokenizer) -> Tokenizer:
    return load_document_tokenizer(sample_tokenizer)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(
        alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from(EMOJI_CJK_CONTROL)),
        max_size=300,
    )
)
def test_any_string_round_trips(doc_tokenizer, text):
    ids = doc_tokenizer.encode(text).ids
    assert doc_tokenizer.decode(ids, skip_special_tokens=False) == text
    assert 0 not in ids  # EOD comes only from the stage, after the document


def test_literal_special_token_text_is_not_a_special_id(doc_tokenizer):
    text = "GPT-2 separates documents with <|endoftext|>; chat uses <|user|> and <|end|>."
    ids = doc_tokenizer.encode(text).ids
    assert not set(ids) & set(range(len(SPECIAL_TOKENS)))
    assert doc_tokenizer.decode(ids) == text


def test_reused_tokenizer_gets_missing_special_tokens_appended(tmp_path, sample_docs):
    tokenizer = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([d["text"] for d in sample_docs[:50]], trainer)
    tokenizer.save(str(tmp_path / "gpt2-like.json"))

    reused = reuse_tokenizer(tmp_path / "gpt2-like.json")
    assert reused.token_to_id("<|endoftext|>") == 0
    appended = [reused.token_to_id(t) for t in list(SPECIAL_TOKENS.values())[1:]]
    assert appended == list(range(600, 605))


def test_training_streams_batches_and_hits_the_vocab_size(sample_docs):
    batches = ([d["text"]] for d in sample_docs[:100])  # a generator: never a list of the corpus
    tokenizer = train_tokenizer(batches, vocab_size=1024, min_frequency=2)
    assert tokenizer.get_vocab_size() == 1024


def test_lossy_tokenizer_is_refused_with_the_config_key(tmp_path, sample_tokenizer, sample_docs):
    lossy = Tokenizer.from_file(str(sample_tokenizer))
    lossy.normalizer = normalizers.Lowercase()
    lossy.save(str(tmp_path / "lowercase.json"))
    write_dedup_dir(tmp_path / "dedup", sample_docs[:10], n_shards=1)
    cfg = TokenizeConfig(tokenizer_path=str(tmp_path / "lowercase.json"))
    with pytest.raises(ValueError, match=r"tokenize\.tokenizer_path.*does not round-trip"):
        run_tokenize(cfg, tmp_path / "dedup", tmp_path / "tokenize")


def test_reused_tokenizer_is_used_as_is(tmp_path, sample_tokenizer, sample_docs):
    write_dedup_dir(tmp_path / "dedup", sample_docs[:20], n_shards=1)
    cfg = TokenizeConfig(tokenizer_path=str(sample_tokenizer), workers=1)
    run_tokenize(cfg, tmp_path / "dedup", tmp_path / "tokenize")
    saved = (tmp_path / "tokenize" / "tokenizer.json").read_bytes()
    assert (
        Tokenizer.from_str(saved.decode()).get_vocab()
        == Tokenizer.from_file(str(sample_tokenizer)).get_vocab()
    )
