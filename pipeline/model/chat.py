"""The chat template: role tokens around each turn, and which tokens carry the loss.

A conversation becomes, as token ids (role and end markers are special-token ids, never text):

    [<|system|>] system text [<|end|>]      (optional)
    <|user|> user text <|end|>
    <|assistant|> response text <|end|>
    ...                                     (more turns)

Only the assistant's text and its closing `<|end|>` are trained on (the model learns to answer
and to stop); role tokens and every other turn are prompt. A prompt for generation ends with
`<|assistant|>`. Message text is encoded with `encode_special_tokens = True`, so a message that
literally contains `<|end|>` cannot close its turn. Imports `tokenizers` only (no torch even):
the registered MLflow model ships this file as code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

# The special tokens of the token shard contract (pipeline.tokenize.tokenizer.SPECIAL_TOKENS); a
# copy, because importing pipeline.tokenize pulls in pyarrow. tests/finetune checks they agree.
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
END, EOD, PAD = "<|end|>", "<|endoftext|>", "<|pad|>"
ROLES = tuple(ROLE_TOKENS)


@dataclass(frozen=True)
class ChatTokens:
    """The ids of the template's special tokens in one tokenizer."""

    system: int
    user: int
    assistant: int
    end: int
    eod: int
    pad: int

    @classmethod
    def of(cls, tokenizer: Tokenizer) -> ChatTokens:
        names = {**ROLE_TOKENS, "end": END, "eod": EOD, "pad": PAD}
        ids = {field: tokenizer.token_to_id(token) for field, token in names.items()}
        missing = [names[f] for f, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"the tokenizer lacks the chat special tokens {missing}")
        return cls(**ids)

    def role(self, name: str) -> int:
        return getattr(self, name)


def load_chat_tokenizer(path: str | Path) -> Tokenizer:
    """A tokenizer.json set up for the template (special-token strings in text stay text)."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.encode_special_tokens = True
    return tokenizer


def encode_text(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids of message text; special-token strings inside it are plain text."""
    tokenizer.encode_special_tokens = True
    return tokenizer.encode(text, add_special_tokens=False).ids


def stop_ids(tokenizer: Tokenizer) -> tuple[int, int]:
    """Generation stops at `<|end|>` (end of the assistant turn) or `<|endoftext|>`."""
    t = ChatTokens.of(tokenizer)
    return (t.end, t.eod)


def render_chat(
    tokenizer: Tokenizer, messages: Sequence[dict[str, Any]]
) -> tuple[list[int], list[bool]]:
    """(ids, trained) of a whole conversation: `trained[i]` marks assistant text and its end."""
    t = ChatTokens.of(tokenizer)
    ids: list[int] = []
    trained: list[bool] = []
    for message in messages:
        role, text = message["role"], message["content"]
        if role not in ROLE_TOKENS:
            raise ValueError(f"unknown role {role!r} (expected one of {ROLES})")
        body = [*encode_text(tokenizer, text), t.end]
        ids += [t.role(role), *body]
        trained += [False] + [role == "assistant"] * len(body)
    return ids, trained


def chat_prompt_ids(tokenizer: Tokenizer, user_text: str, system: str | None = None) -> list[int]:
    """A one-turn prompt ending with `<|assistant|>`, ready for `generate`."""
    messages = [{"role": "user", "content": user_text}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return render_prompt(messages, tokenizer)


def render_prompt(messages_or_text: str | Sequence[dict[str, Any]], tokenizer: Tokenizer):
    """Prompt ids for generation from a user text or a conversation, ending with `<|assistant|>`.

    A conversation that ends with an assistant message keeps it as context (it is not completed).
    """
    if isinstance(messages_or_text, str):
        messages_or_text = [{"role": "user", "content": messages_or_text}]
    ids, _ = render_chat(tokenizer, messages_or_text)
    return ids + [ChatTokens.of(tokenizer).assistant]


def decode_response(tokenizer: Tokenizer, new_ids: Sequence[int]) -> str:
    """The text of generated ids, cut at the first stop token."""
    stops = set(stop_ids(tokenizer))
    cut = next((i for i, tok in enumerate(new_ids) if tok in stops), len(new_ids))
    return tokenizer.decode(list(new_ids[:cut]), skip_special_tokens=True)
