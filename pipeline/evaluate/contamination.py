"""Per-task contamination: how many of a task's items the model may have read in pretraining,
and its accuracy on the items it cannot have (issue 31; GPT-3's "clean subset" analysis).

An item is contaminated when one of its word n-grams occurs in the training corpus: the
tokenize stage's `train` documents (the curated corpus as pretraining read it, decoded from
`<run>/tokenize/train`), with the decontaminate stage's rule and code
(`pipeline.decontaminate`): the text of each of the item's fields that stage reads (question,
choices, passage, ...), normalized words, 13-grams, an item shorter than 13 words whole if it
has `min_item_words`. So an item `decontaminate` would have removed from the corpus is an item
reported here. Memory stays bounded: only the (small) tasks' n-grams are held, in a sorted
array, and the corpus is streamed once, a shard at a time.

Items and per-item scores come from lm-eval's logged samples (`log_samples=True`): the clean
value of a metric is the mean of its per-item values over the clean items, for every metric
whose reported value is the mean of those per-item values (accuracy, not perplexity).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pipeline.decontaminate.config import DEFAULT_TEXT_FIELDS
from pipeline.decontaminate.evalsets import index_items

Samples = dict[str, list[dict[str, Any]]]
"""lm-eval's `samples`: task -> one entry per (item, filter) with `doc_id`, `doc`, `filter` and
the item's value of each metric."""


def task_items(samples: Samples) -> dict[str, dict[int, dict[str, Any]]]:
    """task -> doc_id -> the item's document, as lm-eval scored it."""
    return {task: {r["doc_id"]: r["doc"] for r in rows} for task, rows in samples.items()}


def contaminated_items(
    samples: Samples, corpus: Iterable[str], ngram: int, min_item_words: int
) -> dict[str, set[int]]:
    """task -> the doc_ids of its items sharing an n-gram with a text of `corpus` (one pass)."""
    docs = task_items(samples)
    keys = [(task, doc_id) for task, items in docs.items() for doc_id in items]
    records = ((f"{t}#{d}", _fields(docs[t][d])) for t, d in keys)
    index = index_items(records, DEFAULT_TEXT_FIELDS, ngram, min_item_words)
    assert index is not None  # no size bound: the tasks' items are few
    hit: set[int] = set()
    for text in corpus:
        hit |= index.hit_items(text or "")
    out: dict[str, set[int]] = {task: set() for task in samples}
    for i in hit:
        task, doc_id = keys[i]
        out[task].add(doc_id)
    return out


def _fields(doc: Any) -> dict[str, Any]:
    return doc if isinstance(doc, dict) else {"text": str(doc)}


def share_metrics(samples: Samples, dirty: dict[str, set[int]]) -> dict[str, float]:
    """`<task>_contaminated_share`, `<task>_items` and `<task>_clean_items` of every task."""
    out = {}
    for task, docs in task_items(samples).items():
        bad = len(dirty.get(task, set()) & set(docs))
        out[f"{task}_items"] = float(len(docs))
        out[f"{task}_clean_items"] = float(len(docs) - bad)
        out[f"{task}_contaminated_share"] = bad / len(docs) if docs else 0.0
    return out


def clean_metrics(
    samples: Samples, results: dict[str, dict[str, Any]], dirty: dict[str, set[int]]
) -> dict[str, float]:
    """`<task>_<metric>_clean` (+ `_stderr`) over the clean items, for each mean metric."""
    out = {}
    for task, rows in samples.items():
        by_filter: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            by_filter[row.get("filter", "none")].append(row)
        for filt, items in by_filter.items():
            for metric in items[0].get("metrics", []):
                if not _is_mean(items, metric, results.get(task, {}).get(f"{metric},{filt}")):
                    continue
                clean = [float(r[metric]) for r in items if r["doc_id"] not in dirty.get(task, ())]
                if not clean:
                    continue
                name = f"{task}_{metric}" + ("" if filt == "none" else f"_{filt}")
                name = name.replace("-", "_") + "_clean"
                out[name] = statistics.fmean(clean)
                if len(clean) > 1:  # lm-eval's mean_stderr: sample stdev / sqrt(n)
                    out[f"{name}_stderr"] = statistics.stdev(clean) / math.sqrt(len(clean))
    return out


def _is_mean(items: list[dict], metric: str, reported: Any) -> bool:
    """Whether the task's reported `metric` is the mean of its items' values, so a subset's mean
    is the same metric (not perplexity, F1 over a corpus, or a value lm-eval did not report)."""
    values = [r.get(metric) for r in items]
    if not isinstance(reported, int | float) or isinstance(reported, bool):
        return False
    if not values or not all(isinstance(v, int | float) for v in values):
        return False
    mean = statistics.fmean(float(v) for v in values)
    return math.isclose(mean, float(reported), rel_tol=1e-9, abs_tol=1e-12)
