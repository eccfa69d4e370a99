"""Configuration of the deduplication stage (defaults: FineWeb's MinHash recipe)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.core.base_config import StrictModel


class DedupConfig(StrictModel):
    """How exact and near-duplicate documents are found and which one of each cluster is kept."""

    ngram_size: int = Field(5, ge=1, le=32)
    """Words per shingle (FineWeb: 5)."""
    bands: int = Field(14, ge=1, le=256)
    """LSH bands (FineWeb: 14); two documents are candidates when one whole band agrees."""
    rows_per_band: int = Field(8, ge=1, le=64)
    """MinHash values per band (FineWeb: 8); `bands * rows_per_band` permutations in all."""
    threshold: float | None = Field(None, gt=0.0, lt=1.0)
    """If set: choose bands x rows for this Jaccard threshold (datasketch MinHashLSH's search)."""
    seed: int = Field(1, ge=0)
    """Seed of datasketch's MinHash permutations; signatures of another seed are incomparable."""
    verify: bool = True
    """Check candidate pairs by the true Jaccard of their shingle sets (false: FineWeb as is)."""
    verify_threshold: float = Field(0.75, ge=0.0, le=1.0)
    """With `verify`: the true Jaccard a candidate pair needs to count as a near-duplicate."""
    reference_dirs: list[str] = Field(default_factory=list)
    """Earlier dedup stage directories whose kept documents win over this run's (incremental)."""
    workers: int = Field(2, ge=1)
    """Worker processes for signatures (per shard), bands (per band) and output (per shard)."""
    batch_documents: int = Field(64, ge=1)
    """Documents shingled together (signatures, verification): bounds the numpy work arrays."""
    verify_batch_chars: int = Field(10_000_000, ge=1_000)
    """With `verify`: characters of text read and compared at once (bounds its memory)."""
    compression: Literal["zstd", "lz4", "none"] = "zstd"
    """Compression of the output document shards (signature files stay uncompressed)."""

    def lsh_shape(self) -> tuple[int, int]:
        """(bands, rows per band) in effect."""
        if self.threshold is None:
            return self.bands, self.rows_per_band
        from datasketch import MinHashLSH  # its parameter search minimises FP + FN area

        lsh = MinHashLSH(threshold=self.threshold, num_perm=self.bands * self.rows_per_band)
        return lsh.b, lsh.r
