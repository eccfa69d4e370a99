"""Moved: the `lmpipe` command is `flows/cli.py` (the orchestration layer, ARCHITECTURE.md).

Kept only because tests/train and tests/finetune, which another branch is changing, still import
`pipeline.cli.main`; delete this file when they import `flows.cli`. `tests/test_layers.py`
allows this one import of `flows` in `pipeline/`, and no other.
"""

from flows.cli import main

__all__ = ["main"]
