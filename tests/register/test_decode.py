"""Generated text never ends in a broken character (issue 15): byte-level BPE can stop half-way
through a character's UTF-8 bytes."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from pipeline.register.pyfunc import decode_output


def byte_tokenizer() -> Tokenizer:
    """Byte-level BPE trained on ASCII only: 'é' stays two byte tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=alphabet)
    tok.train_from_iterator(["the cafe is open", "a coffee in the cafe"] * 20, trainer)
    return tok


def test_a_character_cut_by_the_token_limit_is_dropped():
    tok = byte_tokenizer()
    ids = tok.encode("un café").ids
    assert tok.decode(ids[:-1]).endswith("\ufffd")  # what the model's last token leaves
    assert decode_output(tok, ids[:-1]) == "un caf"
    assert decode_output(tok, ids) == "un café"
