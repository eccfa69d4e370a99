"""The `lmpipe` command. Pipeline commands run through the Prefect flows in `flows/`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flows import registry_cli
from flows.ephemeral import start_early
from pipeline.config import ConfigError, PipelineConfig, describe_fields, load_config
from pipeline.core.layout import RunLayout
from pipeline.core.shard_io import UNREADABLE
from pipeline.core.stage import MissingUpstreamError, upstream_fingerprint
from pipeline.ingest.sources import InputError, resolve_inputs
from pipeline.io.mirror import ChecksumError, is_url
from pipeline.io.runlock import RunDirError, describe, run_lock
from pipeline.pretrain.launch import NotEnoughTokens
from pipeline.stages import (
    DATA_STAGES,
    STAGE_ORDER,
    STAGES,
    TRAINING_STAGES,
    StageName,
    active,
    upstream,
)

# Errors whose message alone tells the user what to fix: shown as is, without the type name.
USER_ERRORS = (
    ChecksumError,
    ConfigError,
    InputError,
    MissingUpstreamError,
    NotEnoughTokens,
    RunDirError,
    *UNREADABLE,  # a damaged or missing shard: the file and the stage to rerun
)


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line naming what is wrong (and the valid choices), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


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


# Every stage of the table is a subcommand (`lmpipe <stage>`): a data stage runs the data flow
# for that stage, a training stage the training flow.


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="lmpipe", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        if stage.kind == "data":
            _config_args(sub.add_parser(stage.name, help=stage.help))
    data_help = f"{' -> '.join(DATA_STAGES)}: the curated corpus and its token shards"
    _config_args(sub.add_parser("data", help=data_help))
    refresh_help = "a new snapshot of the new inputs under refresh.root (what corpus-refresh runs)"
    refresh = sub.add_parser("refresh", help=refresh_help)
    _config_args(refresh, io=False)
    refresh.add_argument("--input", nargs="+", help="input paths, globs or fsspec URLs")
    refresh.add_argument("--root", help="snapshot directory (default: refresh.root)")
    for stage in STAGES:
        if stage.kind == "training":
            parser_ = sub.add_parser(stage.name, help=stage.help)
            _config_args(parser_, io=False)
            reads = upstream(stage.name)
            parser_.add_argument("--output", help=f"run directory (reads <output>/{reads})")
    evaluate = sub.choices[StageName.EVALUATE]
    evaluate.add_argument(
        "--model",
        help="score only this model on lm-eval tasks: models:/NAME@ALIAS, models:/NAME/N or a dir",
    )
    evaluate.add_argument(
        "--tasks", nargs="+", metavar="TASK", help="with --model: tasks (default: evaluate.tasks)"
    )
    scaling = sub.add_parser("scaling", help="train the `scaling` ladder, fit loss vs size/compute")
    _config_args(scaling, io=False)
    scaling.add_argument("--output", help="run directory (reads <output>/tokenize)")
    ablate = sub.add_parser(
        "ablate",
        help="data-recipe ablation: variants of the data stages, "
        "one proxy model each, compared in bits per byte on held-out text",
    )
    _config_args(ablate, io=False)
    ablate.add_argument("--variants", required=True, help="variants YAML (configs/ablations/)")
    ablate.add_argument("--output", required=True, help="ablation directory (<output>/<variant>/)")
    run = sub.add_parser("run", help="the whole pipeline: raw inputs to a registered model")
    _config_args(run)
    run.add_argument(
        "--stages",
        nargs="+",
        choices=STAGE_ORDER,
        metavar="STAGE",
        help=f"only these stages (default: all): {', '.join(STAGE_ORDER)}",
    )
    serve = sub.add_parser("serve", help="create the Prefect deployments and run their flow runs")
    _config_args(serve, io=False)
    serve.add_argument("--limit", type=int, help="run at most this many flow runs at a time")
    deploy = sub.add_parser("deploy", help="create the deployments of a prefect.yaml on work pools")
    deploy.add_argument("--prefect-file", default="infra/prefect.yaml", help="the prefect.yaml")
    registry_cli.add_commands(sub, _config_args)
    report = sub.add_parser("report", help="print the funnel of a run directory")
    report.add_argument("run_dir")
    report.add_argument("--markdown", action="store_true", help="print markdown instead")
    report.add_argument(
        "--html",
        metavar="FILE",
        help="write one self-contained HTML page (funnel, examples per drop reason, histograms,"
        " tokens, loss curve, task scores, corpus card) to FILE",
    )
    cfg = sub.add_parser("config", help="print the resolved config, or every field with its help")
    _config_args(cfg, io=False)
    cfg.add_argument("--fields", action="store_true", help="list every key, default and meaning")
    for command in sub.choices.values():  # `lmpipe ingest ... --debug` works as well
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    return parser


def resolve(args: argparse.Namespace) -> PipelineConfig:
    overrides = list(args.overrides)
    if getattr(args, "input", None):
        overrides.append("inputs=" + json.dumps(args.input))
    if getattr(args, "output", None):
        overrides.append("run_dir=" + json.dumps(args.output))
    if getattr(args, "root", None):
        overrides.append("refresh.root=" + json.dumps(args.root))
    return load_config(args.config, overrides)


def _check_inputs(cfg: PipelineConfig, stages: list[str] | None) -> None:
    """A missing input or upstream stage is an error before any flow (and Prefect's API) starts."""
    if not stages or STAGE_ORDER[0] in stages:  # the first stage reads the inputs
        resolve_inputs(cfg.inputs, cfg.ingest.network_timeout_seconds, cfg.ingest.storage_options)
        return
    first = min(STAGE_ORDER.index(s) for s in stages if s in STAGE_ORDER)
    if reads := upstream(STAGE_ORDER[first], cfg):
        upstream_fingerprint(RunLayout(cfg.run_dir).stage(reads))


@contextmanager
def holding(cfg: PipelineConfig) -> Iterator[None]:
    """The run directory's lock, taken before Prefect is even imported: a second writer fails at
    once (a flow takes it again, re-entrantly)."""
    with run_lock(cfg.run_dir) as lock:
        if lock.took_over:
            print(
                f"lmpipe: warning: took over the lock of {describe(lock.took_over)}: that"
                " process is gone",
                file=sys.stderr,
            )
        yield


def _run_data(cfg: PipelineConfig, stages: list[str] | None) -> None:
    _check_inputs(cfg, stages)
    with holding(cfg):
        start_early()  # the temporary Prefect API starts while Prefect is imported
        from flows.data import data_flow  # Prefect is imported only when a flow runs

        results = data_flow(cfg, stages=stages)
    for stage, res in results.items():
        print(f"{stage}: {res['counts']} -> {res['output_dir']}")
    from flows.report import print_report

    print_report(RunLayout(cfg.run_dir).run_dir)


@contextmanager
def started_early(cfg: PipelineConfig, stages: list[str] | None) -> Iterator[None]:
    """The temporary Prefect API server starts now (`flows.ephemeral.start_early`); when
    pretraining is the first stage to run, its process too, importing torch and Lightning
    meanwhile (`pipeline.pretrain.launch.prestart`; an unused one ends with the block)."""
    from pipeline.pretrain import launch

    start_early()
    first = next((s for s in STAGE_ORDER if not stages or s in stages), None)
    if first == StageName.PRETRAIN and launch.pretrain_would_start(cfg, cfg.run_dir):
        launch.prestart("pipeline.pretrain")
    try:
        yield
    finally:
        launch.discard_prestarted()


def _run_training(cfg: PipelineConfig, stages: list[str]) -> int:
    from pipeline.pretrain.launch import TrainingFailed, TrainingTimeout

    _check_local_for_training(cfg, stages)
    try:
        with holding(cfg), started_early(cfg, stages):
            from flows.train import training_flow

            results = training_flow(cfg, stages=stages)
    except (TrainingFailed, TrainingTimeout, FileNotFoundError) as err:
        print(f"lmpipe: {stages[0]} failed: {err}", file=sys.stderr)
        return 1
    for stage, res in results.items():
        print(f"{stage}: {res['counts']} -> {res['output_dir']}")
    return 0


def _run_scaling(cfg: PipelineConfig) -> int:
    try:
        with holding(cfg):
            start_early()
            from flows.scaling import scaling_flow

            results = scaling_flow(cfg)
    except FileNotFoundError as err:  # no <run>/tokenize yet
        print(f"lmpipe: scaling failed: {err}", file=sys.stderr)
        return 1
    failed = [name for name, res in results["points"].items() if "failed" in res]
    print(f"scaling: {results['fit']['counts']} -> {results['fit']['output_dir']}")
    print(Path(results["fit"]["output_dir"], "report.md").read_text())
    if failed:
        print(f"lmpipe: scaling points failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _evaluate_model(cfg: PipelineConfig, model: str, tasks: list[str] | None) -> int:
    """`lmpipe evaluate --model URI [--tasks ...]`: print the scores as JSON."""
    from pipeline.register.register import tracking_uri

    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri(cfg.registry)  # models:/ resolves here
    start_early()
    from flows.evaluate import evaluate_model_flow

    record = evaluate_model_flow(cfg, model, tasks)
    print(json.dumps(record["metrics"], indent=2))
    return 0


def _run_ablate(args: argparse.Namespace) -> int:
    from pipeline.ablate.variants import plan_ablation

    base, _, _ = plan_ablation(args.config, args.variants, args.output, args.overrides)
    ingest = base.ingest
    resolve_inputs(base.inputs, ingest.network_timeout_seconds, ingest.storage_options)
    start_early()
    from flows.ablate import ablate_flow

    result = ablate_flow(args.variants, args.output, args.config, args.overrides)
    print(Path(result["report"]["report"]).read_text())
    return 0


# Training stages that run on a bucket's run directory, on a local copy their launcher pulls and
# pushes (`pipeline/core/local_copy.py`), in pipeline order; the others need a local run
# directory.
BUCKET_TRAINING = tuple(s.name for s in STAGES if s.kind == "training" and s.on_bucket)


def _check_local_for_training(cfg: PipelineConfig, stages: list[str] | None) -> None:
    """evaluate and register need a local run directory (ARCHITECTURE.md, "Object storage"):
    say so before any stage runs, not after the data stages and training."""
    training = [s for s in stages or STAGE_ORDER if s in TRAINING_STAGES]
    local_only = [s for s in training if s not in BUCKET_TRAINING]
    if local_only and is_url(cfg.run_dir):
        last = STAGE_ORDER.index(BUCKET_TRAINING[-1])
        upto = " ".join(s for s in active(cfg) if STAGE_ORDER.index(s) <= last)
        raise RunDirError(
            f"{', '.join(local_only)} need a local run directory, not {cfg.run_dir}: run up to"
            f" {BUCKET_TRAINING[-1]} there (`lmpipe run --stages {upto}`), copy the run down"
            f" (e.g. `aws s3 sync {cfg.run_dir} runs/r1`) and go on with --output runs/r1"
        )


def _run_pipeline(cfg: PipelineConfig, stages: list[str] | None) -> int:
    _check_local_for_training(cfg, stages)
    _check_inputs(cfg, stages)
    with holding(cfg), started_early(cfg, stages):
        from flows.end_to_end import pipeline_flow

        state = pipeline_flow(cfg, stages=stages, return_state=True)
    from flows.report import print_report

    print_report(RunLayout(cfg.run_dir).run_dir)
    if not state.is_completed():
        ended = f"the pipeline flow ended {state.type.value}: {state.message}"
        print(f"lmpipe: error: {' '.join(ended.split())}", file=sys.stderr)
        return 1
    return 0


def _run_refresh(cfg: PipelineConfig) -> int:
    ingest = cfg.ingest
    # before Prefect starts
    resolve_inputs(cfg.inputs, ingest.network_timeout_seconds, ingest.storage_options)
    start_early()
    from flows.refresh import refresh_flow

    state = refresh_flow(cfg, return_state=True)
    if not state.is_completed():
        ended = f"the refresh flow ended {state.type.value}: {state.message}"
        print(f"lmpipe: error: {' '.join(ended.split())}", file=sys.stderr)
        return 1
    result = state.result()
    if result["snapshot"]:
        from flows.report import print_report

        print_report(Path(result["snapshot"]))
        print(
            f"snapshot {result['snapshot']}: {result['inputs_new']} new input(s), "
            f"{result['inputs_skipped']} already in earlier snapshots"
        )
    elif result.get("empty"):
        print(result["message"])
    else:
        print(
            f"no new inputs ({result['inputs_skipped']} already in earlier snapshots): "
            "no snapshot written"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry offline
    os.environ["LMPIPE_TRACEBACKS"] = "1" if args.debug else "0"  # read by flows/common.py
    try:
        if args.command == "report":
            from flows.report import print_report, render_markdown
            from pipeline.ablate.report import REPORT_FILE, is_ablation

            run_dir = RunLayout(args.run_dir).run_dir  # a bucket's run: its mirror path
            if not is_url(args.run_dir) and not run_dir.is_dir():
                raise InputError(f"run directory {args.run_dir} does not exist")
            if args.html:
                from flows.report_html import write_html

                print(f"wrote {write_html(run_dir, Path(args.html))}")
            elif is_ablation(run_dir):
                print(Path(run_dir, REPORT_FILE).read_text())
            elif args.markdown:
                print(render_markdown(run_dir))
            else:
                print_report(run_dir)
        elif args.command == "config":
            cfg = resolve(args)
            print("\n".join(describe_fields()) if args.fields else cfg.model_dump_json(indent=2))
        elif args.command in DATA_STAGES:
            _run_data(resolve(args), [args.command])
        elif args.command == "data":
            _run_data(resolve(args), None)
        elif args.command == "run":
            return _run_pipeline(resolve(args), args.stages)
        elif args.command == "refresh":
            return _run_refresh(resolve(args))
        elif args.command == "ablate":
            return _run_ablate(args)
        elif args.command == "scaling":
            return _run_scaling(resolve(args))
        elif args.command == "deploy":
            from flows.deploy import deploy_prefect_yaml

            for deployment_id in deploy_prefect_yaml(args.prefect_file):
                print(f"deployment {deployment_id}")
        elif args.command == "serve":
            from flows.deploy import serve_deployments

            # prefect 3.8.8's SIGTERM handler calls its async `stop()` from inside the event
            # loop (never awaited, then exits as it should): not worth a warning to the user.
            warnings.filterwarnings("ignore", "coroutine 'Runner.astop' was never awaited")
            serve_deployments(resolve(args), limit=args.limit)
        elif args.command == StageName.EVALUATE and args.model:
            return _evaluate_model(resolve(args), args.model, args.tasks)
        elif args.command in TRAINING_STAGES:
            if args.command == StageName.REGISTER:
                args.overrides += registry_cli.register_overrides(args)
            return _run_training(resolve(args), [args.command])
        elif args.command in ("promote", "generate", "export-hf"):
            return registry_cli.run_command(args, resolve(args))
    except Exception as err:
        if args.debug:
            raise
        print(f"lmpipe: error: {error_line(err)}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError | InputError | RunDirError) else 1
    return 0


def error_line(err: BaseException) -> str:
    """An error as one line: the message of a user error, else its type and first line."""
    if isinstance(err, USER_ERRORS):
        return " ".join(str(err).split())
    if isinstance(err, OSError) and err.errno:  # permissions, a full disk, a read-only mount
        detail = err.filename or err.strerror  # pyarrow's errors carry no file name
        return f"{os.strerror(err.errno)}: {detail}"
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first} (run with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
