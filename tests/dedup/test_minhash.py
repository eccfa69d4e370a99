"""Signatures are datasketch's, bit for bit; band keys agree exactly when band rows agree."""

from __future__ import annotations

import pickle

import numpy as np
from datasketch import MinHash

from pipeline.dedup.minhash import MinHasher, to_hash32
from pipeline.dedup.shingles import document_features, jaccard, shingle_set


def datasketch_signature(hashes32: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    m = MinHash(num_perm=num_perm, seed=seed, scheme="affine32", hashfunc=lambda h: h)
    m.update_batch(hashes32.tolist())
    return m.hashvalues


def test_signatures_equal_datasketch_update_batch(pages):
    # A tiny chunk makes documents span chunk boundaries (the running-minimum path).
    hasher = MinHasher(bands=14, rows=8, seed=7, chunk_shingles=500)
    texts = [d.text for d in pages[:10]] + ["", "too short"]
    batch = document_features(texts, 5).shingles
    signatures = hasher.signatures(batch)  # (D, P)
    assert signatures.shape == (12, 112) and signatures.dtype == np.uint32
    for i in range(10):
        expected = datasketch_signature(to_hash32(batch.of(i)), 112, seed=7)
        assert np.array_equal(signatures[i], expected)
    assert (signatures[10] == np.uint32(0xFFFFFFFF)).all()  # no shingles: datasketch's empty
    assert np.array_equal(signatures[11], datasketch_signature(to_hash32(batch.of(11)), 112, 7))


def test_signature_agreement_estimates_jaccard(pages):
    hasher = MinHasher(bands=32, rows=8, seed=1)  # 256 permutations: tighter estimate
    text = pages[5].text
    words = text.split(" ")
    edited = " ".join(words[: int(len(words) * 0.8)])
    signatures = hasher.signatures(document_features([text, edited], 5).shingles)
    estimate = float(np.mean(signatures[0] == signatures[1]))
    truth = jaccard(shingle_set(text, 5), shingle_set(edited, 5))
    assert abs(estimate - truth) < 0.1, (estimate, truth)


def test_band_keys_match_exactly_when_rows_match():
    hasher = MinHasher(bands=4, rows=3, seed=1)
    rng = np.random.default_rng(0)
    signatures = rng.integers(0, 2**32, size=(50, 12), dtype=np.uint64).astype(np.uint32)
    signatures[1] = signatures[0]
    signatures[2, :3] = signatures[0, :3]  # shares band 0 only
    keys = hasher.band_keys(signatures)  # (B, D)
    assert keys.shape == (4, 50)
    assert (keys[:, 1] == keys[:, 0]).all()
    assert keys[0, 2] == keys[0, 0] and (keys[1:, 2] != keys[1:, 0]).all()
    assert len(np.unique(keys[:, 3:])) == 4 * 47


def test_hasher_pickles_for_worker_processes():
    hasher = MinHasher(bands=14, rows=8, seed=3)
    clone = pickle.loads(pickle.dumps(hasher))
    assert np.array_equal(clone.a, hasher.a) and np.array_equal(clone.b, hasher.b)
