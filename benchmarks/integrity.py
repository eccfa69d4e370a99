"""What the integrity check costs (issue 33 item 2): recording and checking a run's files.

    .venv/bin/python benchmarks/integrity.py RUN_DIR [--rounds 3]

Per stage directory of a finished run: the files and bytes `StageRun.finish` records, the time to
record them (a sha256 of every byte: `file_records`) and to check them when nothing changed (a
`stat` per file: `changed_files`), beside `sha256sum` over the same files (the tool a user would
reach for). Best of `--rounds`.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from pipeline.core.integrity import changed_files, file_records
from pipeline.core.stage import read_manifest


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("| stage | files | MB | record (sha256) s | check (stat) ms | sha256sum s | GB/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for stage_dir in sorted(Path(args.run_dir).iterdir()):
        m = read_manifest(stage_dir)
        if not m or not m.get("files"):
            continue
        paths = [str(stage_dir / rel) for rel in m["files"]]
        size = sum(f["size"] for f in m["files"].values())
        record = best(lambda d=stage_dir: file_records(d), args.rounds)
        check = best(lambda d=stage_dir, m=m: changed_files(d, m), args.rounds)
        tool = best(lambda p=paths: subprocess.run(["sha256sum", *p], capture_output=True), 1)
        print(
            f"| {stage_dir.name} | {len(paths)} | {size / 1e6:.1f} | {record:.3f} |"
            f" {check * 1e3:.2f} | {tool:.3f} | {size / record / 1e9:.2f} |"
        )


if __name__ == "__main__":
    main()
