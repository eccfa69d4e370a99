"""The encoding engine: tiktoken on the trained vocabulary gives exactly HF `tokenizers`' ids.

HF (`load_document_tokenizer`, the tokenizer saved with the model) is the reference everywhere;
`DocumentEncoder` is what the stage encodes with.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers

from pipeline.tokenize import SPECIAL_TOKENS, TokenizeConfig, load_document_tokenizer, run_tokenize
from pipeline.tokenize.encode import DocumentEncoder
from pipeline.tokenize.engine import bytes_to_unicode, choose_engine, tiktoken_encoding
from tests.tokenize.conftest import manifest, write_dedup_dir

SPECIALS = list(SPECIAL_TOKENS.values())
ADVERSARIAL = [
    "🙂👍🏽🏳️‍🌈🇩🇪 family: 👨‍👩‍👧‍👦, keycap 1️⃣, skin tones 👋🏿👋🏻",
    "漢字かなカナ한국어 中文的标点，还有全角空格\u3000和ｆｕｌｌｗｉｄｔｈ１２３",
    "mixed: Привет мир, γειά σου, שלום עולם, مرحبا بالعالم, नमस्ते दुनिया, ᏣᎳᎩ, ⴰⵣⵓⵍ",
    "a" * 20_000,
    "x" + "ab" * 15_000 + " " + "7" * 5_000 + " " + "é" * 3_000 + "🙂" * 2_000,
    "Supercalifragilistic" * 500 + "\n" + "".join(chr(0x4E00 + i) for i in range(3_000)),
    "docs end with <|endoftext|> and chats use <|user|>hi<|end|><|assistant|>yo<|end|>",
    "".join(SPECIALS) + " <|endoftext|><|endoftext|>x<|pad|" + "<|" * 50 + "|>" * 50,
    "   leading, trailing   \t\t\n\n\n\r\n\r\n" + " " * 1_000 + "\n" * 500 + "\t" * 300 + "end",
    " \u00a0\u2000\u2009\u200a\u2028\u2029\u202f\u205f\u3000\x85\x0b\x0c\u180e\u200b\ufeff ",
    "trailing spaces    ",
    "    ",
    "\n",
    "it's I'M we'll you'd they've we're ’s 's 'S 'LL '' '",
    "numbers 1234567890 ١٢٣ ߁߂ ⅫⅪ ²³ ½ ０１ 𝟘𝟙 12,345.67e-8 0x1F",
    "combining: e\u0301 a\u0308\u0323 \u0915\u094d\u0937 Z\u0351\u0352\u0353\u0354\u0355",
    "controls \x00\x01\x07\x1b\x7f and BOM \ufeff and noncharacters \ufdd0\uffff\U0010ffff",
    "private use \ue000\U000f0000 unassigned \U000e0fff \u0378 new scripts \U00011f00\U0001e4d0",
    "math 𝕬𝖇𝖈 ∀x∈ℝ: x²≥0 ⟨ψ|φ⟩ →⇒↔",
    "code: def f(x):\n    return {'a': [1, 2]}  # 注释\n\tif x != y: pass\r\n",
]
SURROGATES = ["broken \ud800 text", "\udcff", "ok then \udfff\ud83d", "🙂\ud83d"]


@pytest.fixture(scope="module")
def hf(sample_tokenizer) -> Tokenizer:
    return load_document_tokenizer(sample_tokenizer)


@pytest.fixture(scope="module")
def encoder(hf) -> DocumentEncoder:
    encoder = DocumentEncoder(hf)
    assert encoder.choice.engine == "tiktoken", encoder.choice.reason
    return encoder


def hf_ids(hf: Tokenizer, text: str) -> list[int]:
    return hf.encode(text, add_special_tokens=False).ids


def test_the_sample_encodes_to_identical_ids(encoder, hf, sample_docs):
    texts = [d["text"] for d in sample_docs]
    expected = [e.ids for e in hf.encode_batch(texts)]
    got = encoder.encode(texts)
    assert all(g.dtype == np.uint32 for g in got)
    assert [g.tolist() for g in got] == expected


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_text_encodes_to_identical_ids(encoder, hf, text):
    (got,) = encoder.encode([text])
    assert got.tolist() == hf_ids(hf, text)


def test_special_token_text_never_becomes_a_special_id(encoder):
    (got,) = encoder.encode(["".join(SPECIALS) * 3])
    assert not set(got.tolist()) & set(range(len(SPECIALS)))


def test_invalid_surrogates_fail_like_hf_and_cost_only_their_text(encoder, hf):
    results = encoder.encode(["fine", *SURROGATES, "also fine"])
    for text, result in zip(SURROGATES, results[1:-1]):
        assert isinstance(result, Exception)
        with pytest.raises(type(result)):
            hf.encode(text)
    assert results[0].tolist() == hf_ids(hf, "fine")
    assert results[-1].tolist() == hf_ids(hf, "also fine")


# Any Unicode text, with the pieces that stress the split pattern mixed in more often than chance.
FRAGMENTS = st.sampled_from(
    [*SPECIALS, "'s", "'ll", "'", " ", "  ", "\t", "\n", "\r\n", "\u3000", "\xa0", "🏳️‍🌈", "1"]
)
TEXTS = st.lists(st.one_of(st.text(max_size=40), FRAGMENTS), max_size=30).map("".join)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_any_text_encodes_to_identical_ids(encoder, hf, text):
    (got,) = encoder.encode([text])
    assert got.tolist() == hf_ids(hf, text)


def boundary_tokenizer() -> Tokenizer:
    """Byte-level BPE whose only merges join `a`, `1`, `!` or a tab to the byte after it: the ids
    show whether that character and the next one fell into one pre-tokenized piece."""
    alphabet = bytes_to_unicode()
    vocab = {alphabet[b]: b for b in range(256)}
    merges = []
    for first in b"a1!\t":
        for b in range(256):
            vocab[alphabet[first] + alphabet[b]] = len(vocab)
            merges.append((alphabet[first], alphabet[b]))
    tokenizer = Tokenizer(models.BPE(vocab, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tokenizer


@pytest.mark.slow  # 1.1M code points through HF: about a minute on 2 cores
def test_both_regex_engines_classify_every_code_point_alike():
    """Oniguruma (HF) and fancy-regex (tiktoken) split `a`+c, `1`+c, `!`+c and tab+c the same
    way for every code point c: letter, number, other and whitespace agree on all of Unicode."""
    tokenizer = boundary_tokenizer()
    choice = choose_engine(tokenizer)
    assert choice.engine == "tiktoken", choice.reason
    fast = tiktoken_encoding(choice.ranks)
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    # One text per block of code points; each probe ends in two tabs, so a whitespace c is
    # followed by whitespace and stays in its tab's piece, as it would at the end of a text.
    texts = [
        "".join(f"a{c}\t\t1{c}\t\t!{c}\t\t\t{c}\t\t" for c in points[i : i + 4096])
        for i in range(0, len(points), 4096)
    ]
    expected = [e.ids for e in tokenizer.encode_batch_fast(texts)]
    got = fast.encode_ordinary_batch(texts, num_threads=2)
    differ = [i for i, (a, b) in enumerate(zip(expected, got)) if a != b]
    assert not differ, f"the engines split differently in code point blocks {differ[:5]}"


def _tokenizer_from(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(vocab, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tokenizer


def test_a_vocabulary_tiktoken_would_encode_differently_goes_to_hf():
    # "bc" merges before "ab", and "abc" is made from "ab"+"c": HF's merges turn "xabc" into
    # x, a, bc; tiktoken's ranks would join a+bc into "abc" (a pair that is not a merge).
    vocab = {ch: b for b, ch in bytes_to_unicode().items()}
    vocab |= {"bc": 256, "ab": 257, "abc": 258}
    tokenizer = _tokenizer_from(vocab, [("b", "c"), ("a", "b"), ("ab", "c")])
    ranks = {bytes(t, "latin-1"): i for t, i in vocab.items() if t.isascii() and len(t) > 1}
    ranks |= {bytes([b]): b for b in range(256)}
    unchecked = tiktoken_encoding(ranks)
    assert unchecked.encode_ordinary("xabc") != tokenizer.encode("xabc").ids  # they do differ

    choice = choose_engine(tokenizer)
    assert choice.engine == "tokenizers" and "encodes to" in choice.reason
    assert DocumentEncoder(tokenizer).encode(["xabc"])[0].tolist() == tokenizer.encode("xabc").ids


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda t: setattr(t, "normalizer", normalizers.NFKC()), "normalizer"),
        (lambda t: t.add_tokens([AddedToken("hello", special=False)]), "inside text"),
        (lambda t: setattr(t, "pre_tokenizer", pre_tokenizers.Whitespace()), "pre-tokenizer"),
        (lambda t: setattr(t, "pre_tokenizer", pre_tokenizers.ByteLevel(True)), "pre-tokenizer"),
        (lambda t: setattr(t, "encode_special_tokens", False), "encode_special_tokens"),
    ],
)
def test_settings_tiktoken_cannot_express_go_to_hf(sample_tokenizer, change, reason):
    tokenizer = load_document_tokenizer(sample_tokenizer)
    change(tokenizer)
    choice = choose_engine(tokenizer)
    assert choice.engine == "tokenizers" and reason in choice.reason


def test_the_manifest_names_the_engine(sample_run):
    assert manifest(sample_run / "tokenize")["encoder"]["engine"] == "tiktoken"


def test_a_tokenizer_with_added_text_tokens_is_encoded_by_hf(
    tmp_path, sample_tokenizer, sample_docs
):
    tokenizer = Tokenizer.from_file(str(sample_tokenizer))
    tokenizer.add_tokens([AddedToken(" the", special=False)])
    tokenizer.save(str(tmp_path / "added.json"))
    write_dedup_dir(tmp_path / "dedup", sample_docs[:10], n_shards=1)
    cfg = TokenizeConfig(tokenizer_path=str(tmp_path / "added.json"), workers=1, val_fraction=0)
    result = run_tokenize(cfg, tmp_path / "dedup", tmp_path / "tokenize")

    encoder = manifest(tmp_path / "tokenize")["encoder"]
    assert encoder["engine"] == "tokenizers" and "added tokens" in encoder["reason"]
    hf = load_document_tokenizer(tmp_path / "added.json")
    added_id = hf.token_to_id(" the")
    expected = sum(len(hf_ids(hf, d["text"])) + 1 for d in sample_docs[:10])
    assert result.counts["tokens"] == expected
    assert any(added_id in hf_ids(hf, d["text"]) for d in sample_docs[:10])
