"""Deduplication: exact and MinHash LSH near-duplicate removal into Arrow shards (`run_dedup`).

Input: `<run>/clean/` shards (at least `id` and `text`; every column is passed through).
Output: `<run>/dedup/`, the curated corpus, plus `rejected/` (reason `exact_duplicate` or
`near_duplicate`, and `duplicate_of`: the id of the kept document), `clusters/` (`id`,
`cluster_id`, `status`) and `index/` (signatures of the kept documents, for incremental runs).
"""

from pipeline.dedup.config import DedupConfig
from pipeline.dedup.run import run_dedup

__all__ = ["DedupConfig", "run_dedup"]
