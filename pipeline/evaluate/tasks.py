"""lm-eval tasks built from a run's own held-out data: files and YAMLs that need no download.

- `cloze` (LAMBADA-style): passages of the tokenize stage's validation documents
  (`<run>/tokenize/val`, documents pretraining never saw), each ending in a word: `acc` is the
  share the model gives that word as its greedy continuation, `perplexity` of the word.
- `mc` (multiple choice): the instruction set's held-out questions (the fine-tuning `val` split,
  `pipeline.finetune.data.is_val`), each with its answer and `choices - 1` answers of other
  held-out questions as distractors; `acc` (summed log-likelihood) and `acc_norm` (per character).

`build_tasks(run_dir, task_dir, limit, ...)` writes `<task>.jsonl` and `<task>.yaml` (an lm-eval
task over the local file: `dataset_path: json`, `data_files`) into `task_dir`;
`lm_eval.tasks.TaskManager(include_path=task_dir)` finds them.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from tokenizers import Tokenizer

from pipeline.core.layout import RunLayout
from pipeline.core.stage import MissingUpstreamError, read_manifest, write_json_atomic
from pipeline.finetune.data import held_out_records
from pipeline.finetune.launch import resolve_data_path
from pipeline.tokenize.shards import load_token_shard, read_token_index, token_shard_paths

TOKENIZER_FILE = "tokenizer.json"

LOCAL_TASKS = ("cloze", "mc")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
LAST_WORD = re.compile(r"^(.*\S)\s+([A-Za-z][A-Za-z'-]*[A-Za-z])[.!?]?$", re.S)


def metric(name: str, aggregation: str = "mean", higher_is_better: bool = True) -> dict:
    """One entry of an lm-eval task's `metric_list`."""
    return {"metric": name, "aggregation": aggregation, "higher_is_better": higher_is_better}


CLOZE_YAML = {
    "output_type": "loglikelihood",
    "doc_to_text": "{{text}}",
    "doc_to_target": "{{' ' + target}}",
    "metric_list": [metric("perplexity", "perplexity", False), metric("acc")],
}
MC_YAML = {
    "output_type": "multiple_choice",
    "doc_to_text": "Question: {{question}}\nAnswer:",
    "doc_to_choice": "choices",
    "doc_to_target": "gold",
    "metric_list": [metric("acc"), metric("acc_norm")],
}


def cloze_passages(text: str, min_words: int, max_words: int) -> Iterator[dict[str, str]]:
    """Passages of whole sentences (min_words..max_words words) split before their last word."""
    words: list[str] = []
    for sentence in SENTENCE_END.split(text):
        words += sentence.split()
        if len(words) > max_words:
            words = sentence.split()  # start the next passage at this sentence
        if len(words) < min_words:
            continue
        match = LAST_WORD.match(" ".join(words))
        words = []
        if match:
            yield {"text": match.group(1), "target": match.group(2)}


def val_documents(run_dir: Path) -> Iterator[str]:
    """Texts of the tokenize stage's validation documents, decoded from `<run>/tokenize/val`."""
    tokenize = RunLayout(run_dir).tokenize
    if not token_shard_paths(tokenize / "val") or not (tokenize / TOKENIZER_FILE).is_file():
        raise MissingUpstreamError(f"{tokenize}/val is empty: the cloze task needs held-out text")
    yield from split_documents(run_dir, "val")


def split_documents(run_dir: Path, split: str) -> Iterator[str]:
    """Texts of the documents of one split of the tokenize stage (`train`: what pretraining
    read), decoded from `<run>/tokenize/<split>`, shard by shard."""
    tokenize = RunLayout(run_dir).tokenize
    tokenizer = Tokenizer.from_file(str(tokenize / TOKENIZER_FILE))
    for path in token_shard_paths(tokenize / split):
        tokens, index = load_token_shard(path), read_token_index(path)
        # Byte-level BPE decodes losslessly; the document's closing EOD is skipped.
        docs = [
            tokens[start : start + length].tolist()
            for start, length in zip(index["start"].to_pylist(), index["length"].to_pylist())
        ]
        yield from tokenizer.decode_batch(docs)


def build_cloze(run_dir: Path, limit: int, min_words: int, max_words: int) -> list[dict]:
    """Up to `limit` passages, round-robin over the validation documents (no document dominates)."""
    per_doc = [list(cloze_passages(t, min_words, max_words)) for t in val_documents(run_dir)]
    docs: list[dict] = []
    for i in range(max((len(p) for p in per_doc), default=0)):
        docs += [p[i] for p in per_doc if i < len(p)]
    return docs[:limit]


def held_out_questions(run_dir: Path) -> list[dict[str, str]]:
    """(question, answer) of the fine-tuning records in its validation split, in file order."""
    ft = read_manifest(RunLayout(run_dir).finetune)
    if ft is None:
        where = RunLayout(run_dir).finetune
        raise MissingUpstreamError(f"{where} has no manifest: the mc task needs a fine-tuned run")
    # As fine-tuning found it: the path as given, else relative to the checkout (the demo's).
    data, fraction = resolve_data_path(ft["config"]["data"]), float(ft["config"]["val_fraction"])
    return [
        {"id": r["id"], "question": r["question"], "answer": r["answer"]}
        for r in held_out_records(data, fraction)
    ]


def first_words(text: str, n: int) -> str:
    """The first sentence of `text`, at most `n` words: choices of comparable length."""
    sentence = SENTENCE_END.split(text.strip(), maxsplit=1)[0]
    return " ".join(sentence.split()[:n])


def build_mc(run_dir: Path, limit: int, choices: int, answer_words: int, seed: int) -> list[dict]:
    """Questions with their answer and `choices - 1` other questions' answers, shuffled."""
    rows = held_out_questions(run_dir)
    answers = sorted({first_words(r["answer"], answer_words) for r in rows})
    if len(answers) < choices:
        raise ValueError(
            f"`evaluate.mc_choices`={choices}: the held-out questions have only "
            f"{len(answers)} distinct answers"
        )
    rng = random.Random(seed)
    docs = []
    for row in rows[:limit]:
        right = first_words(row["answer"], answer_words)
        options = [right] + rng.sample([a for a in answers if a != right], choices - 1)
        rng.shuffle(options)
        docs.append(
            {
                "id": row["id"],
                "question": row["question"],
                "choices": options,
                "gold": options.index(right),
            }
        )
    return docs


def write_task(task_dir: Path, name: str, docs: list[dict], spec: dict[str, Any]) -> Path:
    """`<name>.jsonl` and the lm-eval task `<name>.yaml` reading it (absolute path)."""
    if not docs:
        raise ValueError(f"task {name!r}: the run has no held-out examples to build it from")
    data = (task_dir / f"{name}.jsonl").resolve()
    data.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    config = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        **spec,
        "metadata": {"version": 1.0, "examples": len(docs)},
    }
    path = task_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return path


def build_tasks(run_dir: Path, task_dir: Path, names: list[str], cfg: Any) -> dict[str, int]:
    """Write the local tasks among `names` into `task_dir`; {task: examples}."""
    task_dir.mkdir(parents=True, exist_ok=True)
    built = {}
    if "cloze" in names:
        docs = build_cloze(run_dir, cfg.task_examples, cfg.cloze_min_words, cfg.cloze_max_words)
        write_task(task_dir, "cloze", docs, CLOZE_YAML)
        built["cloze"] = len(docs)
    if "mc" in names:
        docs = build_mc(run_dir, cfg.task_examples, cfg.mc_choices, cfg.mc_answer_words, cfg.seed)
        write_task(task_dir, "mc", docs, MC_YAML)
        built["mc"] = len(docs)
    write_json_atomic(task_dir / "built.json", built)
    return built
