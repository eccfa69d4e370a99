"""The quality model: what scores a document, how it is trained, measured, saved and loaded.

Two scorers, chosen by measurement (benchmarks/RESULTS.md, "quality"):

- the word-order gain of `ngram_lm.BigramLM` trained on the reference (CCNet scored pages by
  perplexity under a model of Wikipedia): sees word salad and shuffled words;
- a logistic regression on hashed word 1- and 2-grams (fastText-style bag of n-grams; DCLM's
  classifier), the reference (positive) against a sample of the run's own documents: ranks
  documents by how much more like the reference than the run's average they read.

`quality_score` is a probability-like number in (0, 1): the classifier's P(reference), the LM's
gain through a logistic (`ORDER_SCALE` nats per unit of log-odds, so 0.5 is a gain of 0), or
the two log-odds averaged. A model is one `.npz` of arrays and a JSON header: nothing pickled.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.quality.ngram_lm import BigramLM

ORDER_SCALE = 0.25  # nats/word of order gain per unit of log-odds: a spread, not a cutoff
N_FEATURES = 2**18  # hashed n-gram buckets (fastText's default bucket count is 2M)
TOKEN_PATTERN = r"(?u)\b\w+\b|[^\w\s]"


def vectorizer():
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        n_features=N_FEATURES,
        ngram_range=(1, 2),
        token_pattern=TOKEN_PATTERN,
        alternate_sign=False,
        norm="l2",
        dtype=np.float32,
    )


def shuffle_words(text: str, rng: random.Random) -> str:
    """`text` with the words of each line in random order: the same bag, no word order."""
    lines = []
    for line in text.splitlines():
        words = line.split()
        rng.shuffle(words)
        lines.append(" ".join(words))
    return "\n".join(lines)


@dataclass
class QualityModel:
    kind: str
    lm: BigramLM | None = None
    coef: np.ndarray | None = None  # logistic regression weights over the hashed n-grams, (F,)
    intercept: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    """What it was trained on and how it measured: reference fingerprint, sizes, metrics."""

    @classmethod
    def train(
        cls, kind: str, reference: list[str], negatives: list[str], seed: int
    ) -> QualityModel:
        lm = BigramLM.train(reference) if kind in ("lm", "combined") else None
        coef, intercept = None, 0.0
        if kind in ("classifier", "combined"):
            from sklearn.linear_model import LogisticRegression

            x = vectorizer().transform(reference + negatives)
            y = np.r_[np.ones(len(reference)), np.zeros(len(negatives))]
            clf = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced",
                                     random_state=seed).fit(x, y)  # fmt: skip
            coef, intercept = clf.coef_[0].astype(np.float32), float(clf.intercept_[0])
        return cls(kind, lm, coef, intercept)

    def logits(self, texts: list[str]) -> np.ndarray:
        """The log-odds of each text being like the reference, (N,)."""
        parts = []
        if self.lm is not None:
            parts.append(np.array([self.lm.order_gain(t) for t in texts]) / ORDER_SCALE)
        if self.coef is not None:
            x = vectorizer().transform(texts)
            parts.append(np.asarray(x @ self.coef, dtype=np.float64) + self.intercept)
        return np.mean(parts, axis=0) if texts else np.zeros(0)

    def score(self, texts: list[str]) -> np.ndarray:
        """`quality_score` of each text in (0, 1), (N,)."""
        return 1.0 / (1.0 + np.exp(-self.logits(texts)))

    def digest(self) -> str:
        """sha256 of what the model is (header and arrays), the same for the same training
        (the `.npz` file's bytes are not: zip entries carry the time they were written)."""
        h = hashlib.sha256(json.dumps([self.kind, self.intercept], sort_keys=True).encode())
        for name, array in sorted(self._arrays().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = self.lm.arrays() if self.lm is not None else {}
        if self.coef is not None:
            arrays["coef"] = self.coef
        return arrays

    def save(self, path: Path) -> None:
        arrays = self._arrays()
        header = {"kind": self.kind, "intercept": self.intercept, "info": self.info}
        with open(path, "wb") as fh:  # np.savez adds `.npz` to a name that lacks it
            np.savez_compressed(fh, header=np.array(json.dumps(header, sort_keys=True)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> QualityModel:
        try:
            data = np.load(path, allow_pickle=False)
            header = json.loads(str(data["header"]))
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{path}: not a quality model saved by lmpipe ({exc})") from None
        lm = BigramLM.from_arrays(data) if "lm_words" in data.files else None
        coef = data["coef"] if "coef" in data.files else None
        return cls(header["kind"], lm, coef, header["intercept"], header["info"])


def metrics(scores_pos: np.ndarray, scores_neg: np.ndarray, cutoff: float) -> dict[str, float]:
    """Precision, recall and ROC AUC of `score >= cutoff` for positives against negatives."""
    from sklearn.metrics import precision_score, recall_score, roc_auc_score

    y = np.r_[np.ones(len(scores_pos)), np.zeros(len(scores_neg))]
    s = np.r_[scores_pos, scores_neg]
    predicted = s >= cutoff
    return {
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, s)),
    }


def train_and_measure(
    kind: str, reference: list[str], negatives: list[str], seed: int, heldout: float, cutoff: float
) -> QualityModel:
    """Train on all but a held-out share of the reference and the negatives; measure on it:
    `heldout_*` the reference against the run's documents, `order_*` the reference against the
    same held-out texts with their words shuffled (what a bag of words cannot tell apart)."""
    rng = random.Random(seed)
    ref, neg = reference[:], negatives[:]
    rng.shuffle(ref)
    rng.shuffle(neg)
    n_ref, n_neg = max(1, int(len(ref) * heldout)), int(len(neg) * heldout)
    model = QualityModel.train(kind, ref[n_ref:], neg[n_neg:], seed)
    pos = model.score(ref[:n_ref])
    shuffled = model.score([shuffle_words(t, rng) for t in ref[:n_ref]])
    found = {f"order_{k}": v for k, v in metrics(pos, shuffled, cutoff).items()}
    if n_neg:
        against = model.score(neg[:n_neg])
        found |= {f"heldout_{k}": v for k, v in metrics(pos, against, cutoff).items()}
    model.info = {"metrics": found, "train_reference": len(ref) - n_ref,
                  "train_negatives": len(neg) - n_neg, "heldout_reference": n_ref,
                  "heldout_negatives": n_neg}  # fmt: skip
    return model
