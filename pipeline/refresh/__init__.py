"""Corpus refresh: read-only snapshots of a run's data stages, with retention."""
