"""Storage stays behind the stage skeleton (issue 34 item 3): no module of a stage package (nor of
any other package under `pipeline/` but the shared layers) imports the mirror or the storage
module. A stage reads, writes, commits and maps its units through `StageRun` and the skeleton's
helpers (`pipeline/core/stage.py`), training launchers through `pipeline/core/local_copy.py`,
and ingest reaches its inputs through `pipeline/core/locations.py`.

Modules are parsed, not imported, so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pipeline.stages import STAGES
from tests.conftest import REPO

STORAGE_MODULES = ("pipeline.io.mirror", "pipeline.io.storage")
SHARED = ("core", "io", "exec")  # the layers that may: the skeleton, storage, execution


def imported_modules(source: str) -> set[str]:
    """Every module `source` imports, `from a.b import c` counted as both `a.b` and `a.b.c`."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def storage_imports(root: Path) -> list[tuple[str, str]]:
    """(module path, storage module) for each import of the mirror or storage module in a
    package of `pipeline/` other than the shared layers."""
    found = []
    for package in sorted(p for p in (root / "pipeline").iterdir() if p.is_dir()):
        if package.name in SHARED or package.name.startswith(("_", ".")):
            continue
        for path in sorted(package.rglob("*.py")):
            imported = imported_modules(path.read_text())
            for module in STORAGE_MODULES:
                if any(name == module or name.startswith(module + ".") for name in imported):
                    found.append((path.relative_to(root).as_posix(), module))
    return found


def test_no_stage_package_imports_the_mirror_or_the_storage_module():
    assert storage_imports(REPO) == []


def test_every_stage_package_is_checked():
    # A stage whose package moved under a shared layer would escape the check.
    for stage in STAGES:
        package = (stage.package or f"pipeline.{stage.name}").split(".")[1]
        assert package not in SHARED, stage.name
        assert (REPO / "pipeline" / package).is_dir(), stage.name


def test_an_import_of_the_mirror_in_a_stage_is_found(tmp_path):
    # The check itself can fail: each spelling of the import, also inside a function.
    stage = tmp_path / "pipeline" / "somestage"
    stage.mkdir(parents=True)
    (tmp_path / "pipeline" / "core").mkdir()
    (tmp_path / "pipeline" / "core" / "stage.py").write_text("from pipeline.io import mirror\n")
    (stage / "a.py").write_text("from pipeline.io import mirror\n")
    (stage / "b.py").write_text("def f():\n    import pipeline.io.storage as s\n")
    (stage / "c.py").write_text("from pipeline.io.mirror import fetch\n")
    (stage / "d.py").write_text("from pipeline.io.runlock import LOCK_FILE\n")  # not storage
    assert storage_imports(tmp_path) == [
        ("pipeline/somestage/a.py", "pipeline.io.mirror"),
        ("pipeline/somestage/b.py", "pipeline.io.storage"),
        ("pipeline/somestage/c.py", "pipeline.io.mirror"),
    ]
