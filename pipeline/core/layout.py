"""The run layout: where each stage of a run writes (ARCHITECTURE.md, "Run layout").

Every stage writes `<run_dir>/<stage>/`, named by the stage table (`pipeline/stages.py`). Code
outside this module asks a `RunLayout` for a stage's directory (`layout.dedup`,
`layout.stage(name)`) instead of joining the name itself, so the layout is defined in one place
(and can move, say to object storage).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.io import mirror
from pipeline.stages import STAGE_ORDER, stage


def _stage_dir(name: str) -> property:
    return property(lambda self: self.stage(name), doc=f"`<run_dir>/{name}/`")


@dataclass(frozen=True)
class RunLayout:
    """The directories of one run: `RunLayout("runs/demo").clean == Path("runs/demo/clean")`.

    A run directory on an object store (`s3://bucket/runs/r1`) is its local mirror
    (`pipeline/io/mirror.py`): stage code writes there and the stage helpers commit to the bucket.
    """

    run_dir: Path

    def __post_init__(self) -> None:
        # Accept a str, like the flows pass; a URL becomes its mirror path.
        object.__setattr__(self, "run_dir", mirror.local_path(self.run_dir))

    def location(self) -> str:
        """The run directory as the user named it: its URL for a run on an object store."""
        return mirror.location(self.run_dir)

    @classmethod
    def absolute(cls, run_dir: str | Path) -> RunLayout:
        """The layout of `run_dir` with a local directory made absolute (a training process may
        start elsewhere); a bucket's is its mirror in this node's scratch directory."""
        return cls(run_dir if mirror.is_url(run_dir) else Path(run_dir).resolve())

    @classmethod
    def of(cls, run: RunLayout | str | Path) -> RunLayout:
        """`run` itself if it is a layout, else the layout of the run directory `run`."""
        return run if isinstance(run, RunLayout) else cls(run)

    def stage(self, name: str) -> Path:
        """The directory of stage `name` (a name of the stage table)."""
        return self.run_dir / stage(name).name


# One attribute per stage of the table: `layout.dedup`, `layout.tokenize`, ...
for _name in STAGE_ORDER:
    setattr(RunLayout, _name, _stage_dir(_name))
