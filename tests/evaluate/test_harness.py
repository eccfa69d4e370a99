"""The `lmpipe` lm-eval model: real `lm_eval.simple_evaluate` on local tasks, numbers checked
against a direct computation with the model, and against `lm_eval --model hf` on the export."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance
from tokenizers import Tokenizer

from pipeline.evaluate.contamination import clean_metrics, contaminated_items, share_metrics
from pipeline.evaluate.harness import LmpipeLM
from pipeline.evaluate.task_scores import task_results, task_scores
from pipeline.evaluate.tasks import (
    CLOZE_YAML,
    MC_YAML,
    build_cloze,
    first_words,
    split_documents,
    write_task,
)
from pipeline.finetune.data import to_messages
from pipeline.model import load_model
from tests.finetune.runs import BUNDLED


@pytest.fixture(scope="module")
def model_and_tokenizer(pretrained_run):
    model = load_model(pretrained_run / "pretrain").eval()
    return model, Tokenizer.from_file(str(pretrained_run / "tokenize" / "tokenizer.json"))


@pytest.fixture(scope="module")
def task_dir(pretrained_run, tmp_path_factory):
    """`cloze` from the run's held-out documents, `mc` from the bundled instruction set."""
    out = tmp_path_factory.mktemp("tasks")
    cloze = build_cloze(pretrained_run, limit=40, min_words=20, max_words=60)
    records = [to_messages(json.loads(line)) for line in BUNDLED.read_text().splitlines()[:60:5]]
    qa = [(m[-2]["content"], first_words(m[-1]["content"], 16)) for m in records]
    answers = [a for _, a in qa]
    mc = []
    for i, (question, answer) in enumerate(qa):
        choices = [answer, answers[(i + 1) % len(qa)], answers[(i + 5) % len(qa)]]
        choices = choices[i % 3 :] + choices[: i % 3]  # the gold answer at every position
        mc.append({"question": question, "choices": choices, "gold": choices.index(answer)})
    write_task(out, "cloze", cloze, CLOZE_YAML)
    write_task(out, "mc", mc, MC_YAML)
    return out


def read_docs(task_dir, name):
    return [json.loads(line) for line in (task_dir / f"{name}.jsonl").read_text().splitlines()]


@torch.no_grad()
def direct_loglikelihood(model, tok, context: str, continuation: str) -> tuple[float, bool]:
    """log p(continuation | context) with one forward pass of the model, no lm_eval code."""
    ctx = tok.encode(context).ids
    cont = tok.encode(context + continuation).ids[len(ctx) :]
    window = (ctx + cont)[-(model.config.block_size + 1) :]
    logprobs = F.log_softmax(model(torch.tensor([window[:-1]]))[0].float(), -1)  # (T, V)
    picked = logprobs[-len(cont) :]  # (n, V)
    target = torch.tensor(cont)
    total = float(picked.gather(1, target[:, None]).sum())
    return total, bool((picked.argmax(-1) == target).all())


def stderr(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values))


def test_lm_eval_on_the_adapter_matches_a_direct_computation(model_and_tokenizer, task_dir):
    model, tok = model_and_tokenizer
    lm = LmpipeLM(model=model, tokenizer=tok, batch_size=4)
    got = task_scores(lm, ["cloze", "mc"], task_dir)

    cloze = read_docs(task_dir, "cloze")
    scored = [direct_loglikelihood(model, tok, d["text"], " " + d["target"]) for d in cloze]
    hits = [float(greedy) for _, greedy in scored]
    assert len(cloze) == 40
    assert got["cloze_acc"] == pytest.approx(statistics.mean(hits), abs=1e-9)
    assert got["cloze_acc_stderr"] == pytest.approx(stderr(hits), abs=1e-9)
    ppl = math.exp(-statistics.mean(ll for ll, _ in scored))
    assert got["cloze_perplexity"] == pytest.approx(ppl, rel=1e-4)

    acc, acc_norm = [], []
    for d in read_docs(task_dir, "mc"):
        ctx = f"Question: {d['question']}\nAnswer:"
        lls = [direct_loglikelihood(model, tok, ctx, " " + c)[0] for c in d["choices"]]
        norm = [ll / len(c) for ll, c in zip(lls, d["choices"], strict=True)]
        acc.append(float(lls.index(max(lls)) == d["gold"]))
        acc_norm.append(float(norm.index(max(norm)) == d["gold"]))
    assert got["mc_acc"] == pytest.approx(statistics.mean(acc), abs=1e-9)
    assert got["mc_acc_norm"] == pytest.approx(statistics.mean(acc_norm), abs=1e-9)
    assert got["mc_acc_stderr"] == pytest.approx(stderr(acc), abs=1e-9)
    assert got["mc_acc_norm_stderr"] == pytest.approx(stderr(acc_norm), abs=1e-9)
    assert 0 < statistics.mean(acc) < 1 and 0 < statistics.mean(acc_norm) < 1  # not degenerate


def test_planted_items_are_contaminated_and_clean_scores_cover_exactly_the_others(
    model_and_tokenizer, task_dir, pretrained_run
):
    """Items planted in training pages (verbatim, and re-cased/re-punctuated) are found by one
    pass over the corpus; the clean accuracy is the direct accuracy of every other item."""
    model, tok = model_and_tokenizer
    lm = LmpipeLM(model=model, tokenizer=tok, batch_size=4)
    out = task_results(lm, ["cloze", "mc"], task_dir, log_samples=True)
    corpus = list(split_documents(pretrained_run, "train"))
    docs = {t: read_docs(task_dir, t) for t in ("cloze", "mc")}
    plant = {"cloze": [3, 10, 17], "mc": [2, 5]}
    pages = []
    for n, i in enumerate(plant["cloze"]):
        text = docs["cloze"][i]["text"]
        text = text.upper().replace(",", "").replace(".", " ;") if n % 2 else text
        pages.append(f"A forum post, copied from a quiz site:\n{text} ... thanks in advance!")
    pages += [f"Q: {docs['mc'][i]['question']} See the docs." for i in plant["mc"]]

    # The run's own training text: the cloze passages are held-out documents (clean), while
    # every mc item has a choice that is a sentence of a page pretraining read (the bundled
    # answers quote the pages), as decontaminate would find it.
    before = contaminated_items(out["samples"], corpus, 13, 8)
    assert before == {"cloze": set(), "mc": set(range(12))}
    assert contaminated_items(out["samples"], [*corpus, *pages], 13, 8)["cloze"] == {3, 10, 17}

    found = contaminated_items(out["samples"], pages, 13, 8)
    assert found == {"cloze": {3, 10, 17}, "mc": {2, 5}}
    shares = share_metrics(out["samples"], found)
    assert shares["cloze_contaminated_share"] == 3 / 40 and shares["mc_clean_items"] == 10
    clean = clean_metrics(out["samples"], out["results"], found)
    hits = [
        float(direct_loglikelihood(model, tok, d["text"], " " + d["target"])[1])
        for i, d in enumerate(docs["cloze"])
        if i not in found["cloze"]
    ]
    assert clean["cloze_acc_clean"] == pytest.approx(statistics.mean(hits), abs=1e-9)
    assert clean["cloze_acc_clean_stderr"] == pytest.approx(stderr(hits), abs=1e-9)
    acc = []
    for i, d in enumerate(docs["mc"]):
        if i not in found["mc"]:
            ctx = f"Question: {d['question']}\nAnswer:"
            lls = [direct_loglikelihood(model, tok, ctx, " " + c)[0] for c in d["choices"]]
            acc.append(float(lls.index(max(lls)) == d["gold"]))
    assert len(acc) == 10
    assert clean["mc_acc_clean"] == pytest.approx(statistics.mean(acc), abs=1e-9)
    assert "mc_acc_norm_clean" in clean and "cloze_perplexity_clean" not in clean  # not a mean
    nothing = clean_metrics(out["samples"], out["results"], {"cloze": set(), "mc": set()})
    assert nothing["mc_acc_norm_clean"] == pytest.approx(out["results"]["mc"]["acc_norm,none"])


@torch.no_grad()
def test_rolling_loglikelihood_and_generation_agree_with_the_model(model_and_tokenizer):
    model, tok = model_and_tokenizer
    lm = LmpipeLM(model=model, tokenizer=tok, batch_size=3)
    eod = tok.token_to_id("<|endoftext|>")
    texts = ["The json module encodes and decodes JSON. " * k for k in (1, 3, 12)]  # 12: > block
    requests = [Instance("loglikelihood_rolling", {}, (t,), 0) for t in texts]
    rolled = lm.loglikelihood_rolling(requests)
    for text, got in zip(texts, rolled, strict=True):
        ids = [eod, *tok.encode(text).ids]
        block = model.config.block_size
        total, start = 0.0, 1
        while start < len(ids):  # disjoint windows: each token once, with up to `block` context
            end = min(start + block, len(ids))
            window = ids[max(0, end - block - 1) : end]
            logprobs = F.log_softmax(model(torch.tensor([window[:-1]]))[0].float(), -1)
            n = end - start
            total += float(logprobs[-n:].gather(1, torch.tensor(window[-n:])[:, None]).sum())
            start = end
        assert got == pytest.approx(total, rel=1e-5)

    prompt = "The json module"
    out = lm.generate_until(
        [Instance("generate_until", {}, (prompt, {"until": ["\n\n"], "max_gen_toks": 24}), 0)]
    )[0]
    ids = tok.encode(prompt).ids
    for _ in range(24):  # greedy decoding without a cache
        nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
        if nxt == eod:
            break
        ids.append(nxt)
    expected = tok.decode(ids[len(tok.encode(prompt).ids) :]).split("\n\n")[0]
    assert out == expected


def test_an_unknown_task_is_an_error_naming_the_available_ones(model_and_tokenizer, task_dir):
    model, tok = model_and_tokenizer
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['clozee'\]; available: \['cloze'"):
        task_scores(LmpipeLM(model=model, tokenizer=tok), ["clozee"], task_dir)


def test_the_adapter_on_a_registered_version_and_lm_eval_hf_on_its_export_agree(
    pretrained_run, task_dir, tmp_path, monkeypatch
):
    from lm_eval import simple_evaluate

    from pipeline.evaluate.task_scores import flat_metrics, task_manager
    from pipeline.register.export_hf import export_hf
    from tests.finetune.runs import registered_run

    run, version = registered_run(pretrained_run, tmp_path, monkeypatch, "harness")
    ours = task_scores(LmpipeLM(pretrained=version, batch_size=4), ["cloze", "mc"], task_dir)

    export = export_hf(version, tmp_path / "hf")
    eod = Tokenizer.from_file(str(export / "tokenizer.json")).token_to_id("<|endoftext|>")
    theirs = simple_evaluate(
        model="hf",
        model_args={"pretrained": str(export), "dtype": "float32", "prefix_token_id": eod},
        tasks=["cloze", "mc"],
        task_manager=task_manager(task_dir, ["cloze", "mc"]),
        batch_size=4,
        device="cpu",
        bootstrap_iters=1000,
        log_samples=False,
    )
    theirs = flat_metrics(theirs["results"])
    assert set(ours) == set(theirs) and {"cloze_acc", "mc_acc_norm_stderr"} <= set(ours)
    for key, value in ours.items():
        tol = 0.05 if key == "cloze_perplexity_stderr" else 1e-4  # bootstrap vs bootstrap
        assert theirs[key] == pytest.approx(value, rel=tol, abs=1e-9), key
