"""The chat template and the sample preparation: masks, rejections, truncation, the split."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from pipeline.finetune.data import prepare_sft_data, read_split, to_messages
from pipeline.finetune.module import IGNORE, masked_example
from pipeline.model.chat import (
    ChatTokens,
    chat_prompt_ids,
    decode_response,
    encode_text,
    render_chat,
    stop_ids,
)
from pipeline.tokenize.tokenizer import SPECIAL_TOKENS
from tests.finetune.runs import BUNDLED
from tests.pretrain.token_shards import train_tokenizer

TEXTS = [json.loads(line) for line in BUNDLED.read_text().splitlines()[:300]]


@pytest.fixture(scope="module")
def tokenizer():
    corpus = [json.dumps(t) for t in TEXTS] * 3
    tok = train_tokenizer(corpus, 600)
    tok.encode_special_tokens = True
    return tok


def test_the_template_copies_the_pipeline_special_tokens(tokenizer):
    t = ChatTokens.of(tokenizer)
    assert [t.eod, t.pad, t.system, t.user, t.assistant, t.end] == list(range(6))
    names = {"eod": t.eod, "pad": t.pad, "system": t.system, "user": t.user}
    names |= {"assistant": t.assistant, "end": t.end}
    assert {k: tokenizer.id_to_token(v) for k, v in names.items()} == SPECIAL_TOKENS
    assert stop_ids(tokenizer) == (t.end, t.eod)


def test_only_assistant_text_and_its_end_are_trained(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What does `len` do?"},
        {"role": "assistant", "content": "Return the length."},
    ]
    ids, trained = render_chat(tokenizer, messages)
    t = ChatTokens.of(tokenizer)
    answer = encode_text(tokenizer, "Return the length.")
    assert ids[-len(answer) - 2 :] == [t.assistant, *answer, t.end]
    assert [i for i, keep in zip(ids, trained, strict=True) if keep] == [*answer, t.end]
    prompt = chat_prompt_ids(tokenizer, "What does `len` do?", system="Be brief.")
    assert ids[: len(prompt)] == prompt and prompt[-1] == t.assistant
    assert not any(trained[: len(prompt)])


def test_labels_carry_loss_on_response_tokens_only(tokenizer):
    record = {"instruction": "Summarise.", "input": "The json module.", "output": "It does JSON."}
    ids, trained = render_chat(tokenizer, to_messages(record))
    x, y = masked_example(ids, trained, 64, pad_id=1)
    n = len(ids) - 1
    assert x[:n].tolist() == ids[:-1] and set(x[n:].tolist()) == {1}
    targets = [tok for tok, keep in zip(ids[1:], trained[1:], strict=True) if keep]
    assert [v for v in y.tolist() if v != IGNORE] == targets
    t = ChatTokens.of(tokenizer)
    answer_start = ids.index(t.assistant)  # y[i] is the target of position i, i.e. ids[i + 1]
    assert all(v == IGNORE for v in y[:answer_start].tolist())
    assert y[answer_start].item() == ids[answer_start + 1]  # the first answer token
    assert all(v == IGNORE for v in y[n:].tolist())  # padding


def test_special_token_text_inside_a_message_is_plain_text(tokenizer):
    ids, _ = render_chat(tokenizer, [{"role": "user", "content": "say <|end|> now"}])
    assert ids.count(ChatTokens.of(tokenizer).end) == 1  # only the real end of the turn
    assert decode_response(tokenizer, encode_text(tokenizer, "a <|end|> b")) == "a <|end|> b"


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_lines_are_rejected_with_a_reason_and_the_rest_is_kept(tokenizer, tmp_path):
    good = [json.dumps(t) for t in TEXTS[:40]]
    bad = [
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"instruction": "no output"}),
        json.dumps({"messages": [{"role": "robot", "content": "x"}]}),
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
        json.dumps({"instruction": "x", "output": 3}),
        json.dumps({"instruction": "long " * 200, "output": "short."}),
    ]
    lines = good[:20] + bad + good[20:]
    data = write_jsonl(tmp_path / "data.jsonl", lines)
    prepared = prepare_sft_data(data, tokenizer, tmp_path / "stage", 96, 8, 0.2)
    c = prepared.counts
    assert c["records"] == 47 and c["rejected"] == 7
    assert c["train_samples"] + c["val_samples"] == 40 and c["val_samples"] > 0
    assert prepared.reasons == {
        "invalid_json": 1,
        "not_an_object": 1,
        "bad_format": 4,
        "too_long": 1,
    }
    rejected = ds.dataset(tmp_path / "stage" / "rejected", format="arrow").to_table().to_pylist()
    assert {r["reason"] for r in rejected} == set(prepared.reasons)
    assert all(r["detail"].startswith("line ") and r["stage"] == "finetune" for r in rejected)
    ids, trained = read_split(tmp_path / "stage", "train")
    assert all(len(i) <= 97 and sum(t[1:]) >= 8 for i, t in zip(ids, trained, strict=True))


def test_a_long_answer_is_cut_when_enough_of_it_fits(tokenizer, tmp_path):
    record = {"instruction": "Tell me.", "output": "word " * 300}
    data = write_jsonl(tmp_path / "d.jsonl", [json.dumps(record)] * 3)
    prepared = prepare_sft_data(data, tokenizer, tmp_path / "s", 64, 8, 0.5)
    assert prepared.counts["truncated"] == 3 and prepared.counts.get("rejected", 0) == 0
    ids, _ = read_split(tmp_path / "s", "train") or read_split(tmp_path / "s", "val")
    assert all(len(i) == 65 for i in ids)


def test_the_split_depends_on_the_id_alone(tokenizer, tmp_path):
    lines = [json.dumps(t) for t in TEXTS[:120]]
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    write_jsonl(a, lines)
    write_jsonl(b, list(reversed(lines)))
    prepare_sft_data(a, tokenizer, tmp_path / "sa", 128, 8, 0.2)
    prepare_sft_data(b, tokenizer, tmp_path / "sb", 128, 8, 0.2)
    for split in ("train", "val"):
        ids_a, _ = read_split(tmp_path / "sa", split)
        ids_b, _ = read_split(tmp_path / "sb", split)
        assert sorted(map(tuple, ids_a)) == sorted(map(tuple, ids_b))
