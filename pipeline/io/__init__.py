"""Where a run's files live: local paths or a bucket (storage, the mirror of a bucket run
directory), the run lock, the MLflow tracking store."""
