"""lmpipe models in EleutherAI's lm-evaluation-harness: the `lmpipe` model of `lm_eval`.

`LmpipeLM` is a `TemplateLM`, the base `lm_eval --model hf` also uses: lm_eval encodes
(context, continuation) pairs with our tokenizer the same way for both, so the adapter and the
Hugging Face export of the same version give the same numbers (tests/evaluate/test_harness.py).
Scoring is batched (right-padded; the causal mask keeps padding out of earlier positions);
generation uses the KV-cache generator (`pipeline.model.generate`), one request at a time.

`pretrained` is a directory with `model.safetensors` + `model_config.json` (a run's `pretrain/`
or `finetune/`, whose tokenizer is `<run>/tokenize/tokenizer.json`), or a registered version
(`models:/NAME@ALIAS`, `models:/NAME/VERSION`). From the command line:
`python -m pipeline.evaluate.harness run --model lmpipe --model_args pretrained=runs/demo/finetune
--include_path runs/demo/evaluate/tasks --tasks cloze` (lm_eval's CLI with this model registered).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import Collator
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tokenizers import Tokenizer

from pipeline.core.layout import RunLayout
from pipeline.model import load_model
from pipeline.model.chat import EOD
from pipeline.model.generate import generate
from pipeline.model.transformer import DecoderLM

# The chat template of the Hugging Face export, so `apply_chat_template` renders what
# `lm_eval --model hf --apply_chat_template` renders (pipeline/register/export_hf.py).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
Request = tuple[Any, list[int], list[int]]  # (request strings or None, context, continuation)


def load_lmpipe(pretrained: str | Path, tokenizer: str | Path | None = None):
    """(model, tokenizer) of a stage directory or a registered version (`models:/...`)."""
    source = str(pretrained)
    if source.startswith("models:/"):
        return _load_registered(source)
    directory = Path(source)
    if not (directory / "model.safetensors").is_file():
        raise FileNotFoundError(f"{directory} has no model.safetensors (a pretrain/ or finetune/)")
    tok = Path(tokenizer) if tokenizer else RunLayout(directory.parent).tokenize / "tokenizer.json"
    if not tok.is_file():
        raise FileNotFoundError(f"{tok} is missing: pass tokenizer=PATH/tokenizer.json")
    return load_model(directory).eval(), Tokenizer.from_file(str(tok))


def _load_registered(uri: str) -> tuple[DecoderLM, Tokenizer]:
    from safetensors.torch import load_file

    from pipeline.model.config import ModelConfig
    from pipeline.register.export_hf import registered_artifacts
    from pipeline.register.pyfunc import MODEL_CONFIG, TOKENIZER, WEIGHTS

    with tempfile.TemporaryDirectory(prefix="lmpipe-harness-") as tmp:
        art = registered_artifacts(uri, Path(tmp))
        cfg = ModelConfig.model_validate_json(art[MODEL_CONFIG].read_text())
        model = DecoderLM(cfg)
        model.load_state_dict(load_file(str(art[WEIGHTS])), strict=not cfg.tie_embeddings)
        return model.eval(), Tokenizer.from_file(str(art[TOKENIZER]))


@register_model("lmpipe")
class LmpipeLM(TemplateLM):
    """An lmpipe `DecoderLM` and its byte-level BPE tokenizer as an lm_eval model."""

    def __init__(
        self,
        pretrained: str | Path | None = None,
        tokenizer: str | Path | Tokenizer | None = None,
        batch_size: int | str = 8,
        max_gen_toks: int = 64,
        device: str = "cpu",
        model: DecoderLM | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if model is None:
            if pretrained is None:
                raise ValueError("lmpipe model: give pretrained=DIR_OR_MODELS_URI (or model=)")
            model, tokenizer = load_lmpipe(pretrained, tokenizer)
        if tokenizer is None:
            raise ValueError("lmpipe model: a `model` object needs tokenizer=PATH")
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"  # lm_eval's CLI asks for cuda by default
        self.model = model.to(device).eval()
        self._device = torch.device(device)
        if not isinstance(tokenizer, Tokenizer):
            tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tok = tokenizer
        self.tok.encode_special_tokens = False  # as HF: role tokens of a chat template parse
        self.batch_size = 8 if str(batch_size).startswith("auto") else int(batch_size)
        self.max_gen_toks = int(max_gen_toks)
        self._eot = self.tok.token_to_id(EOD)
        self.name = str(pretrained or "lmpipe-model")

    @property
    def eot_token_id(self) -> int:
        return self._eot  # <|endoftext|>: the document boundary of pretraining

    @property
    def max_length(self) -> int:
        return self.model.config.block_size

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def tokenizer_name(self) -> str:
        return self.name.replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return CHAT_TEMPLATE if chat_template else None

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt=True):
        from jinja2 import Template

        return Template(CHAT_TEMPLATE).render(
            messages=chat_history, add_generation_prompt=add_generation_prompt
        )

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kw) -> list[int]:
        return self.tok.encode(string, add_special_tokens=False).ids

    def tok_decode(self, tokens: list[int], skip_special_tokens: bool = True) -> str:
        return self.tok.decode(tokens, skip_special_tokens=skip_special_tokens)

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """lm-eval's, with its "Tokenizing inputs" bar on a terminal only (`None`: tqdm's TTY
        check); in a Prefect run's log its redraws would be lines."""
        return super().loglikelihood(requests, disable_tqdm=True if disable_tqdm else None)

    @torch.no_grad()
    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, **kwargs: Any
    ) -> list[tuple[float, bool]]:
        """(sum of continuation log-probs, continuation is the greedy decode) per request."""

        def longest_first(req: Request):
            return -len(req[1] + req[2]), tuple(req[1] + req[2])

        order = Collator(requests, sort_fn=longest_first)
        results = []
        for chunk in order.get_batched(n=self.batch_size):
            for (strings, _, _), answer in zip(chunk, self._score_batch(chunk), strict=True):
                if strings is not None:
                    self.cache_hook.add_partial("loglikelihood", strings, answer)
                results.append(answer)
        return order.get_original(results)

    def _score_batch(self, chunk: list[Request]) -> list[tuple[float, bool]]:
        # A too long pair keeps its last max_length + 1 tokens (lm_eval's HF rule).
        inputs = [(ctx + cont)[-(self.max_length + 1) :][:-1] for _, ctx, cont in chunk]
        width = max(len(x) for x in inputs)
        ids = torch.full((len(inputs), width), self._eot, dtype=torch.long)  # (B, T)
        for row, x in enumerate(inputs):
            ids[row, : len(x)] = torch.tensor(x)
        logprobs = F.log_softmax(self.model(ids.to(self.device)).float(), dim=-1)  # (B, T, V)
        out = []
        for row, (x, (_, _, cont)) in enumerate(zip(inputs, chunk, strict=True)):
            n = len(cont)
            lp = logprobs[row, len(x) - n : len(x)]  # (n, V) predictions of the continuation
            target = torch.tensor(cont, device=lp.device)  # (n,)
            total = lp.gather(1, target[:, None]).sum()
            out.append((float(total), bool((lp.argmax(-1) == target).all())))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of whole texts in disjoint windows of the context (lm_eval's rule)."""
        windows, owners = [], []
        for i, (text,) in enumerate(req.args for req in requests):
            for ctx, cont in map(
                make_disjoint_window,
                get_rolling_token_windows(
                    token_list=self.tok_encode(text),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                ),
            ):
                windows.append((None, ctx, cont))
                owners.append(i)
        totals = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, self._loglikelihood_tokens(windows), strict=True):
            totals[owner] += logprob
        for req, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy (or sampled) continuations cut at the first `until` string."""
        out = []
        for req in requests:
            context, gen_kwargs = req.args
            text = self._generate_one(context, dict(gen_kwargs))
            self.cache_hook.add_partial("generate_until", req.args, text)
            out.append(text)
        return out

    def _generate_one(self, context: str, kw: dict[str, Any]) -> str:
        until = kw.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        max_new = int(kw.pop("max_gen_toks", self.max_gen_toks))
        temperature = float(kw.get("temperature", 0.0)) if kw.get("do_sample") else 0.0
        ids = self.tok_encode(context) or [self._eot]
        new = generate(
            self.model,
            ids[-max(1, self.max_length - max_new) :],
            max_new_tokens=max_new,
            temperature=temperature,
            top_k=kw.get("top_k"),
            top_p=kw.get("top_p"),
            eos_ids=(self._eot,),
        )
        text = self.tok_decode(new)
        for stop in until:
            text = text.split(stop)[0] if stop else text
        return text


if __name__ == "__main__":
    # lm_eval's own CLI with the `lmpipe` model registered (lm_eval has no plugin entry point):
    # python -m pipeline.evaluate.harness run --model lmpipe --model_args pretrained=DIR ...
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()
