"""The registry's `lmpipe` subcommands: register, promote, generate, export-hf.

`register` runs through the training flow (a Prefect run, like every pipeline step); the others
are registry operations and read the model with plain MLflow.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.stages import StageName


def add_commands(sub: Any, config_args: Callable[..., None]) -> None:
    """Add the registry subcommands to the `lmpipe` parser."""
    reg = sub.choices[
        StageName.REGISTER
    ]  # the stage's subcommand (flows/cli.py, from the stage table)
    reg.add_argument(
        "run_dir", nargs="?", help="run directory with finetune/ or pretrain/ weights (or --output)"
    )
    reg.add_argument("--name", help="registered model name (default: registry.model_name)")
    pro = sub.add_parser("promote", help="force a registered version to be the champion")
    config_args(pro, io=False)
    pro.add_argument("name")
    pro.add_argument("version")
    pro.add_argument("--note", default="", help="why (recorded in the version's tags)")
    gen = sub.add_parser("generate", help="generate text with a registered model")
    config_args(gen, io=False)
    gen.add_argument("--model", required=True, help="model URI, e.g. models:/NAME@champion")
    gen.add_argument("prompt", nargs="+", help="one or more prompts")
    gen.add_argument("--max-new-tokens", type=int, help="tokens to generate per prompt")
    gen.add_argument("--temperature", type=float, help="0 = greedy (default)")
    gen.add_argument("--top-k", type=int, help="sample among the k most likely tokens (0 = all)")
    gen.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    exp = sub.add_parser("export-hf", help="export a registered version to a Hugging Face dir")
    config_args(exp, io=False)
    exp.add_argument("model", help="model URI, e.g. models:/NAME/3 or models:/NAME@champion")
    exp.add_argument("--output", required=True, help="directory to write")


def register_overrides(args: argparse.Namespace) -> list[str]:
    """`--set` overrides implied by `lmpipe register RUN_DIR --name NAME`."""
    extra = ["run_dir=" + json.dumps(args.run_dir)] if args.run_dir else []
    if args.name:
        extra.append("registry.model_name=" + json.dumps(args.name))
    return extra


def run_command(args: argparse.Namespace, cfg: PipelineConfig) -> int:
    """promote / generate / export-hf (register goes through the flow, see flows.cli)."""
    import os

    from mlflow.exceptions import MlflowException

    from pipeline.register.register import tracking_uri

    uri = tracking_uri(cfg.registry)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # models:/ URIs resolve against this registry
    try:
        if args.command == "promote":
            return _promote(args, cfg)
        if args.command == "generate":
            return _generate(args)
        if args.command == "export-hf":
            from pipeline.register.export_hf import export_hf

            print(export_hf(args.model, args.output))
    except MlflowException as err:
        print(f"lmpipe: {args.command} failed: {err.message}", file=sys.stderr)
        return 1
    return 0


def _promote(args: argparse.Namespace, cfg: PipelineConfig) -> int:
    from pipeline.register.promote import force_promote
    from pipeline.register.register import client_for

    decision = force_promote(client_for(cfg.registry), args.name, args.version, args.note)
    before = f" (was v{decision.previous})" if decision.previous else ""
    print(f"{args.name} v{args.version} is champion{before}: {decision.reason}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    import mlflow

    from pipeline.register.pyfunc import PROMPT_COLUMN

    params = {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_k": args.top_k,
    }
    model = mlflow.pyfunc.load_model(args.model)
    prompts = {PROMPT_COLUMN: list(args.prompt)}
    texts = model.predict(prompts, params={k: v for k, v in params.items() if v is not None})
    print(json.dumps(list(texts)) if args.json else "\n".join(texts))
    return 0
