"""Layers point one way: `flows/` imports `pipeline/`, never the reverse (ARCHITECTURE.md).

Every module under `pipeline/` is parsed (not imported), so an import inside a function counts
as much as one at the top: the library must run without Prefect and without the flows.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

# The orchestration layer: `pipeline/` may not import these, at module level or in a function.
FORBIDDEN = ("prefect", "flows")

# (module, imported package) pairs allowed despite the rule, each with the reason: none.
ALLOWED: set[tuple[str, str]] = set()


def imported_packages(source: str) -> set[str]:
    """The top-level package of every `import x.y` / `from x.y import z` in `source`."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def layer_violations(root: Path) -> list[tuple[str, str]]:
    """(module path, forbidden package) for every import of the orchestration layer."""
    violations = []
    for path in sorted((root / "pipeline").rglob("*.py")):
        module = path.relative_to(root).as_posix()
        for package in sorted(imported_packages(path.read_text()) & set(FORBIDDEN)):
            if (module, package) not in ALLOWED:
                violations.append((module, package))
    return violations


def test_the_library_never_imports_the_orchestration_layer():
    assert layer_violations(REPO) == []


def test_an_import_inside_a_function_is_found(tmp_path):
    # The check itself can fail: a lazy import in a function body is a violation too.
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "stage.py").write_text(
        "import os\n\ndef run():\n    from prefect import flow\n    import flows.data\n"
    )
    assert layer_violations(tmp_path) == [
        ("pipeline/stage.py", "flows"),
        ("pipeline/stage.py", "prefect"),
    ]


def test_every_allowed_exception_still_exists():
    # A stale allow-list entry would silently permit the import if the file came back.
    for module, _ in ALLOWED:
        assert (REPO / module).is_file(), f"{module} is gone: remove it from ALLOWED"
