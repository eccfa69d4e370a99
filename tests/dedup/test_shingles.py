"""Normalization, shingles and exact keys against a plain-Python reference on real pages."""

from __future__ import annotations

import unicodedata

import numpy as np

from pipeline.dedup.shingles import document_features, jaccard, shingle_set


def reference_words(text: str) -> list[str]:
    """The documented normalization, written the slow, obvious way."""
    words, current, prev_digit = [], [], False
    for ch in unicodedata.normalize("NFKC", text).lower():
        kind = unicodedata.category(ch) if ord(ch) < 0x10000 else "L"
        if kind == "Nd":
            if not prev_digit:
                current.append("0")  # a run of digits reads as one 0
            prev_digit = True
            continue
        prev_digit = False
        if kind[0] in "PSCZ" or ch.isspace() or ch == "_":
            words += ["".join(current)] if current else []
            current = []
        else:
            current.append(ch)
    return words + (["".join(current)] if current else [])


def reference_shingles(text: str, n: int) -> list[tuple[str, ...]]:
    words = reference_words(text)
    if 0 < len(words) < n:
        return [tuple(words)]
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def test_shingles_match_the_plain_python_reference_on_real_pages(pages):
    sample = pages[::25]
    batch = document_features([d.text for d in sample], 5).shingles
    for i, doc in enumerate(sample):
        expected = reference_shingles(doc.text, 5)
        hashes = batch.of(i).tolist()
        assert len(hashes) == len(expected), doc.url
        # Same shingle <=> same hash, in order (a bijection between the two sequences).
        assert len(set(zip(expected, hashes))) == len(set(expected)) == len(set(hashes))


def test_normalization_ignores_case_punctuation_and_number_values():
    a = "Python 3.11 was released in 2022, see https://python.org!"
    b = "python 3.12 -- was RELEASED in 2023; see https python org"
    assert np.array_equal(shingle_set(a, 5), shingle_set(b, 5))
    assert reference_words("abc12def 007") == ["abc0def", "0"]
    assert len(shingle_set("a different sentence with other words", 5)) == 2


def test_short_empty_and_null_texts():
    features = document_features(["", None, "two words", "   ", "one two three four five"], 5)
    assert features.shingles.counts().tolist() == [0, 0, 1, 0, 1]
    assert features.exact[0] == features.exact[1] == features.exact[3]  # all empty
    nothing = document_features([], 5)
    assert len(nothing.exact) == 0 and nothing.shingles.offsets.tolist() == [0]


def test_exact_key_ignores_layout_and_case_but_not_digits():
    base = "The quick brown fox.\n\nIt jumped over 3 dogs."
    same = [
        "  the QUICK brown fox.  It jumped\tover 3 dogs.  ",
        "The quick brown fox. It jumped over 3 dogs.",
    ]
    other = [
        "The quick brown fox. It jumped over 4 dogs.",
        "The quick brown fox It jumped over 3 dogs.",
    ]
    keys = document_features([base, *same, *other], 5).exact
    assert keys[1] == keys[0] and keys[2] == keys[0]
    assert keys[3] != keys[0] and keys[4] != keys[0]


def test_batching_does_not_change_hashes(pages):
    texts = [d.text for d in pages[:12]]
    together = document_features(texts, 5)
    for i, text in enumerate(texts):
        alone = document_features([text], 5)
        assert np.array_equal(alone.shingles.hashes, together.shingles.of(i))
        assert alone.exact[0] == together.exact[i]


def test_jaccard_of_shingle_sets(pages):
    text = pages[3].text
    words = text.split(" ")
    half = " ".join(words[: len(words) // 2])
    full, part = shingle_set(text, 5), shingle_set(half, 5)
    expected = len(set(reference_shingles(half, 5))) / len(set(reference_shingles(text, 5)))
    assert abs(jaccard(full, part) - expected) < 0.01
    assert jaccard(full, full) == 1.0 and jaccard(full, np.array([], dtype=np.uint64)) == 0.0
