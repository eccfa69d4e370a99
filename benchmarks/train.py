"""Pretraining throughput: `run_pretrain` (Lightning) next to a minimal plain-PyTorch loop.

    .venv/bin/python benchmarks/train.py [--run-dir RUN] [--config configs/demo.yaml]
                                         [--steps 60] [--rounds 3] [--set pretrain.key=value]

Both train the demo model on the same token shards with the same batches (the pipeline's own
dataset, seeded sampler and document-masking collate), precision, AdamW, warmup + cosine schedule,
gradient clipping and accumulation. The plain loop is the floor: what Lightning's Trainer,
callbacks, checkpointing and MLflow logging cost on top. Tokens/s is the median over logging
intervals of `log_interval` optimizer steps (the first is warm-up; validation excluded) for
both, in `--rounds` alternating rounds of `--steps` steps (the machine may be shared); the
ratio is of the medians over rounds. Then the full demo training runs through `run_pretrain`:
the validation loss the demo config reaches and after how many tokens, next to the unigram
entropy of the training tokens.

Without `--run-dir`, the token shards come from the real tokenize stage (demo config) run on the
bundled sample: ingest, then resiliparse main-content text as the curated corpus.
"""

from __future__ import annotations

import os
import sys

# benchmarks/ holds a `tokenize.py`, which would shadow the stdlib module of that name (imported by
# inspect, linecache...): this script's folder must leave the import path before anything else.
# It gives way to the repository, so that `benchmarks.*` imports as from `python -m`.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.plain import PlainLoop  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.core.stage import ShardWriter, list_shards, write_manifest  # noqa: E402
from pipeline.pretrain.metrics import COMPUTE_DTYPE, peak_flops_per_device, read_metrics  # noqa: E402
from pipeline.pretrain.run import run_pretrain  # noqa: E402

SAMPLE = REPO / "data" / "sample" / "python-docs.warc.gz"


def build_tokens(scratch: Path, tokenize_cfg) -> Path:
    """Sample WARC -> ingest -> resiliparse text (dedup-shaped shards) -> the tokenize stage."""
    from resiliparse.extract.html2text import extract_plain_text

    from pipeline.ingest import IngestConfig, run_ingest
    from pipeline.tokenize import run_tokenize

    run_ingest(IngestConfig(workers=1), [str(SAMPLE)], scratch / "ingest")
    table = pa.concat_tables(
        pa.ipc.open_file(str(p)).read_all() for p in list_shards(scratch / "ingest")
    )
    schema = pa.schema([("id", pa.string()), ("url", pa.string()), ("text", pa.large_string())])
    (scratch / "dedup").mkdir()
    writer = ShardWriter(scratch / "dedup", "docs", schema, compression="none")
    for id_, url, html in zip(*(table.column(c).to_pylist() for c in ("id", "url", "raw"))):
        text = extract_plain_text(html, main_content=True)
        if len(text) > 200:
            writer.write({"id": id_, "url": url, "text": text})
    writer.close()
    write_manifest(scratch / "dedup", stage="dedup", output_fingerprint=str(writer.rows))
    run_tokenize(tokenize_cfg, scratch / "dedup", scratch / "tokenize")
    return scratch / "tokenize"


def unigram_entropy(split_dir: Path) -> float:
    """Entropy (nats/token) of the token frequencies: the loss of the best context-free model."""
    paths = sorted(split_dir.glob("shard-?????.arrow"))
    counts = np.bincount(
        np.concatenate([pa.ipc.open_file(str(p)).get_batch(0).column(0).to_numpy() for p in paths])
    )
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def plain_loop(cfg, tokenize_dir: Path, steps: int) -> list[float]:
    """The floor (`benchmarks/plain.py`): tokens/s per interval of `log_interval` optimizer
    steps (the first interval is warm-up and dropped)."""
    loop = PlainLoop(cfg, tokenize_dir)
    rates, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        loop.step()
        if step % cfg.log_interval == 0:
            now = time.perf_counter()
            rates.append(cfg.log_interval * loop.tokens_per_step / (now - t0))
            t0 = now
    return rates[1:]


def lightning_run(cfg, tokenize_dir: Path, out_dir: Path) -> tuple[list[float], dict]:
    """`run_pretrain` as the pipeline runs it (MLflow, checkpoints); tokens/s per interval."""
    manifest = run_pretrain(cfg, tokenize_dir, out_dir).manifest
    train, _ = read_metrics(out_dir)
    return [r["tokens_per_sec"] for r in train[1:]], manifest


def throughput_rounds(p, tokens: Path, steps: int, rounds: int, scratch: Path):
    """Alternate the two loops `rounds` times over `steps` optimizer steps each (shared machine).

    Validation only at the end (not timed) and warmup shortened to fit: speed is all we want here.
    """
    short = p.model_copy(
        update={"max_steps": steps, "val_interval": steps, "warmup_steps": min(p.warmup_steps, 5)}
    )
    plain, light = [], []
    for r in range(rounds):
        plain.append(statistics.median(plain_loop(short, tokens, steps)))
        rates, _ = lightning_run(short, tokens, scratch / f"round-{r}" / "pretrain")
        light.append(statistics.median(rates))
        print(f"round {r}: plain {plain[-1]:,.0f} tokens/s, lightning {light[-1]:,.0f}", flush=True)
    return plain, light


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run-dir", help="a run with a finished tokenize stage (default: build one)")
    ap.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per throughput round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating throughput rounds")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    cfg = load_config(args.config, args.overrides)
    scratch = Path(tempfile.mkdtemp(prefix="bench-train-"))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{scratch / 'mlflow.db'}")
    os.chdir(scratch)  # MLflow's local artifact store lands in the scratch directory
    t0 = time.time()
    if args.run_dir:
        tokens = Path(args.run_dir).resolve() / "tokenize"
    else:
        tokens = build_tokens(scratch, cfg.tokenize)
    print(f"token shards: {tokens} ({time.time() - t0:.0f} s)", flush=True)
    p = cfg.pretrain.model_copy(update={"progress_bar": False})
    plain, light = throughput_rounds(p, tokens, args.steps, args.rounds, scratch)
    t1 = time.time()
    _, demo = lightning_run(p, tokens, scratch / "demo" / "pretrain")
    report(p, tokens, plain, light, demo, time.time() - t1)


def report(p, tokens: Path, plain: list[float], light: list[float], m: dict, wall: float) -> None:
    peak = peak_flops_per_device(torch.device("cpu"), COMPUTE_DTYPE.get(p.precision, torch.float32))
    peak = p.peak_flops_per_device or peak
    flops = m["flops_per_token"]
    floor, ours = statistics.median(plain), statistics.median(light)
    print(
        f"\nmodel: {m['counts']['parameters']:,} parameters, {flops / 1e6:.1f} MFLOP/token, "
        f"batch {p.micro_batch_size}x{p.model.block_size} x{p.grad_accum} accum, {p.precision}, "
        f"{torch.get_num_threads()} threads; CPU peak {peak / 1e9:.0f} GFLOP/s; "
        f"median of {len(plain)} alternating rounds"
    )
    print(f"{'loop':<34}{'tokens/s':>10}{'MFU':>8}{'ratio':>8}")
    print(f"{'plain PyTorch loop (floor)':<34}{floor:>10,.0f}{flops * floor / peak:>8.1%}{1:>8.2f}")
    print(
        f"{'lmpipe run_pretrain (Lightning)':<34}{ours:>10,.0f}{flops * ours / peak:>8.1%}"
        f"{ours / floor:>8.2f}"
    )
    metrics, counts = m["metrics"], m["counts"]
    print(
        f"\ndemo training ({p.max_steps} steps): {counts['tokens']:,} tokens in {wall:.0f} s "
        f"(whole run_pretrain, {metrics['tokens_per_sec']:,.0f} tokens/s, MFU "
        f"{metrics.get('mfu', 0):.1%}); val loss {metrics['val_loss']:.3f} nats/token "
        f"(ppl {metrics['val_ppl']:.1f}), best {metrics['best_val_loss']:.3f}; "
        f"unigram entropy of the train tokens {unigram_entropy(tokens / 'train'):.3f}; "
        f"ln(vocab {m['model_config']['vocab_size']}) = "
        f"{math.log(m['model_config']['vocab_size']):.3f}"
    )


if __name__ == "__main__":
    main()
