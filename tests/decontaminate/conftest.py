"""The bundled sample as a curated corpus (dedup-shaped shards), shared with the tokens tests."""

from tests.tokenize.conftest import sample_docs, write_dedup_dir  # noqa: F401 (fixture, helper)
