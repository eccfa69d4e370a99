"""Instruction data: JSONL records -> templated, masked token samples in train/val shards.

`prepare_sft_data` reads `finetune.data` line by line. A record is either
`{"instruction", "input"?, "output"}` (one user turn, the instruction then the input after a
blank line, and the answer) or `{"messages": [{"role", "content"}, ...]}` with roles system,
user and assistant and at least one assistant turn. An optional `id` names the record (else
`line-N`). Each line ends in the output shards or in `rejected/` with its reason:
`invalid_json`, `not_an_object`, `bad_format` (neither form, wrong types, unknown role, no
assistant turn, empty text) or `too_long` (fewer than `min_response_tokens` response tokens
fit the context). A longer sample that keeps enough of its response is cut at the end and
counted as `truncated`. The split (`val` when blake2b-64(id) / 2**64 < `val_fraction`) depends
on the id alone.

Shards `<stage>/data/{train,val}.arrow`: columns `id`, `input_ids` (list<int32>, the whole
templated conversation) and `trained` (list<bool>, True where the token is response).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from tokenizers import Tokenizer

from pipeline.core.shard_io import read_arrow
from pipeline.core.stage import REJECTED_DIR, RejectedLedger, ShardWriter
from pipeline.model.chat import ROLES, render_chat

STAGE = "finetune"
DATA_DIR = "data"
SCHEMA = pa.schema(
    [("id", pa.string()), ("input_ids", pa.list_(pa.int32())), ("trained", pa.list_(pa.bool_()))]
)


class BadRecord(ValueError):
    """A record that cannot become a sample; `reason` is its rejection reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def to_messages(record: Any) -> list[dict[str, str]]:
    """A record in either accepted form as chat messages (the validation lives here)."""
    if not isinstance(record, dict):
        raise BadRecord("not_an_object", f"a JSON {type(record).__name__}, not an object")
    if "messages" in record:
        return _checked_messages(record["messages"])
    instruction, extra, output = (
        record.get("instruction"),
        record.get("input"),
        record.get("output"),
    )
    texts = [instruction, output] + ([extra] if extra is not None else [])
    if not all(isinstance(t, str) for t in texts):
        raise BadRecord("bad_format", "needs string `instruction` and `output` (or `messages`)")
    if not instruction.strip() or not output.strip():
        raise BadRecord("bad_format", "empty `instruction` or `output`")
    user = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
    return [{"role": "user", "content": user}, {"role": "assistant", "content": output}]


def _checked_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise BadRecord("bad_format", "`messages` must be a non-empty list")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise BadRecord("bad_format", "each message needs a string `content`")
        if m.get("role") not in ROLES:
            raise BadRecord("bad_format", f"role {m.get('role')!r} is not one of {ROLES}")
    replies = [m for m in messages if m["role"] == "assistant"]
    if not replies or not all(m["content"].strip() for m in replies):
        raise BadRecord("bad_format", "no assistant message with text")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def fit_to_context(
    ids: list[int], trained: list[bool], max_len: int, min_response: int
) -> tuple[list[int], list[bool], bool]:
    """Cut a sample to `max_len` tokens (input + target: max_len + 1 ids); (ids, trained, cut)."""
    if len(ids) <= max_len + 1:
        return ids, trained, False
    kept = sum(trained[1 : max_len + 1])  # targets are ids[1:]: the first token is never one
    if kept < min_response:
        raise BadRecord(
            "too_long",
            f"{len(ids)} tokens, context {max_len}: {kept} response tokens would fit",
        )
    return ids[: max_len + 1], trained[: max_len + 1], True


def is_val(sample_id: str, val_fraction: float) -> bool:
    h = int.from_bytes(hashlib.blake2b(sample_id.encode(), digest_size=8).digest(), "big")
    return h / 2**64 < val_fraction


def held_out_records(data: Path, val_fraction: float) -> list[dict[str, Any]]:
    """(line, id, question, answer) of the records of `data` in the `val` split, in file order:
    the questions fine-tuning holds out (evaluate's `mc` task asks them; decontaminate keeps
    them out of the corpus). Lines that are not valid records are skipped here (fine-tuning
    counts them as rejected)."""
    out = []
    with open(data, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):  # ids as `_sample` names them
            try:
                record = json.loads(line)
                messages = to_messages(record)
            except (json.JSONDecodeError, BadRecord):
                continue
            sample_id = str(record.get("id", f"line-{n}"))
            users = [m["content"] for m in messages if m["role"] == "user"]
            answer = [m["content"] for m in messages if m["role"] == "assistant"][-1]
            if users and is_val(sample_id, val_fraction):
                out.append({"line": n, "id": sample_id, "question": users[-1], "answer": answer})
    return out


@dataclass
class Prepared:
    """What `prepare_sft_data` counted."""

    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


def _sample(line: str, n: int, tokenizer: Tokenizer, max_len: int, min_response: int):
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise BadRecord("invalid_json", str(err)) from None
    sample_id = str(record.get("id", f"line-{n}")) if isinstance(record, dict) else f"line-{n}"
    try:
        ids, trained = render_chat(tokenizer, to_messages(record))
        return sample_id, *fit_to_context(ids, trained, max_len, min_response)
    except BadRecord as err:
        err.sample_id = sample_id
        raise


def prepare_sft_data(
    data_path: Path,
    tokenizer: Tokenizer,
    stage_dir: Path,
    max_len: int,
    min_response: int,
    val_fraction: float,
) -> Prepared:
    """Template, mask, fit and split every line of `data_path` into `<stage_dir>/data/`."""
    out = Path(stage_dir) / DATA_DIR
    for directory in (out, Path(stage_dir) / REJECTED_DIR):
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("*.arrow"):
            old.unlink()  # a rerun rewrites every sample: no shard of an earlier run may stay
    writers = {s: ShardWriter(out, s, SCHEMA, max_records=10**9) for s in ("train", "val")}
    rejected = RejectedLedger(stage_dir, "finetune", STAGE)
    counts: Counter[str] = Counter()
    with open(data_path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            counts["records"] += 1
            try:
                sample_id, ids, trained, cut = _sample(line, n, tokenizer, max_len, min_response)
            except BadRecord as err:
                sid = getattr(err, "sample_id", f"line-{n}")
                rejected.reject(sid, str(data_path), err.reason, f"line {n}: {err}")
                continue
            split = "val" if is_val(sample_id, val_fraction) else "train"
            writers[split].write({"id": sample_id, "input_ids": ids, "trained": trained})
            counts[f"{split}_samples"] += 1
            counts["truncated"] += cut
            counts[f"{split}_response_tokens"] += sum(trained[1:])
    for name, writer in writers.items():
        for shard in writer.close():
            (out / shard).rename(out / f"{name}.arrow")  # one shard per split
    rejected.close()
    counts["rejected"] = sum(rejected.reasons.values())
    return Prepared(dict(counts), dict(sorted(rejected.reasons.items())))


def read_split(stage_dir: Path, split: str) -> tuple[list[list[int]], list[list[bool]]]:
    """(input_ids, trained) of every sample of one split; empty lists if the split is empty."""
    path = Path(stage_dir) / DATA_DIR / f"{split}.arrow"
    if not path.is_file():
        return [], []
    table = read_arrow(path, memory_map=False)
    return table.column("input_ids").to_pylist(), table.column("trained").to_pylist()
