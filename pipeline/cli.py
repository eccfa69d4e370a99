"""The `lmpipe` command. Pipeline commands run through the Prefect flows in `flows/`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pipeline.config import ConfigError, PipelineConfig, describe_fields, load_config
from pipeline.ingest.sources import InputError, resolve_inputs


def _config_args(p: argparse.ArgumentParser, io: bool = True) -> None:
    p.add_argument("--config", help="YAML config file (default: built-in defaults)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set ingest.workers=4 (repeatable)",
    )
    if io:
        p.add_argument("--input", nargs="+", help="input paths, globs or fsspec URLs")
        p.add_argument("--output", help="run directory (stages write <output>/<stage>/)")


# Data stages runnable one at a time (`lmpipe <stage>`); each runs the data flow for that stage.
DATA_STAGE_COMMANDS = {
    "ingest": "raw WARC/WET/JSONL/Parquet files to Arrow document shards",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for stage, help_text in DATA_STAGE_COMMANDS.items():
        _config_args(sub.add_parser(stage, help=help_text))
    _config_args(sub.add_parser("data", help="ingest -> clean -> dedup into a curated corpus"))
    report = sub.add_parser("report", help="print the funnel of a run directory")
    report.add_argument("run_dir")
    report.add_argument("--markdown", action="store_true", help="print markdown instead")
    cfg = sub.add_parser("config", help="print the resolved config, or every field with its help")
    _config_args(cfg, io=False)
    cfg.add_argument("--fields", action="store_true", help="list every key, default and meaning")
    return parser


def resolve(args: argparse.Namespace) -> PipelineConfig:
    overrides = list(args.overrides)
    if getattr(args, "input", None):
        overrides.append("inputs=" + json.dumps(args.input))
    if getattr(args, "output", None):
        overrides.append("run_dir=" + json.dumps(args.output))
    return load_config(args.config, overrides)


def _run_data(cfg: PipelineConfig, stages: list[str] | None) -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not stages or "ingest" in stages:
        resolve_inputs(cfg.inputs)  # a missing input is an error before any flow starts
    from flows.data import data_flow  # Prefect is imported only when a flow runs

    results = data_flow(cfg, stages=stages)
    for stage, res in results.items():
        print(f"{stage}: {res['counts']} -> {res['output_dir']}")
    from pipeline.report import print_report

    print_report(Path(cfg.run_dir))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "report":
            from pipeline.report import print_report, render_markdown

            if args.markdown:
                print(render_markdown(Path(args.run_dir)))
            else:
                print_report(Path(args.run_dir))
        elif args.command == "config":
            cfg = resolve(args)
            print("\n".join(describe_fields()) if args.fields else cfg.model_dump_json(indent=2))
        elif args.command in DATA_STAGE_COMMANDS:
            _run_data(resolve(args), [args.command])
        elif args.command == "data":
            _run_data(resolve(args), None)
    except (ConfigError, InputError) as err:
        print(f"lmpipe: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
