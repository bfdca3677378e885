"""The family's tokenizers: one byte-level BPE shared by every model, and the code expert's extension.

Special tokens come first and are fixed: ``<unk>`` 0, ``<s>`` 1 (BOS), ``</s>`` 2 (EOS), ``<pad>`` 3. The
pad token is a row of its own, so ``padding_idx`` freezes no real token's embedding. Like Llama's,
the tokenizer prepends BOS when asked for special tokens.

The code tokenizer is the base tokenizer plus :data:`CODE_TOKENS`, 16 **special** tokens appended after
the base vocabulary, as CodeLlama-7B adds 16 tokens (its infilling tokens and reserved ones) to Llama 2's
32,000: its vocabulary differs from the target's by string, so a transfer must align the two by token
string, not by id. None of them is a plain text fragment, so the code tokenizer splits ordinary text
into exactly the ids the base tokenizer gives (only a text holding one of the 16 marker strings
literally, such as ``<PRE>``, differs): a method whose tokenizer carries the expert's tokens
(Pen2Sword) and one that keeps the base tokenizer (LoRA) train and evaluate on the same token
sequences, so their losses compare.
"""

from __future__ import annotations

from collections.abc import Iterable

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")
UNK, BOS, EOS, PAD = SPECIAL_TOKENS

# CodeLlama's infilling tokens (prefix, middle, suffix, end of infill) and twelve reserved ones, all
# special: matched only as whole marker strings, never produced by splitting ordinary text.
CODE_INFILL_TOKENS = ("<PRE>", "<MID>", "<SUF>", "<EOT>")
CODE_RESERVED_TOKENS = tuple(f"<reserved_{k}>" for k in range(12))
CODE_TOKENS = CODE_INFILL_TOKENS + CODE_RESERVED_TOKENS
assert len(CODE_TOKENS) == 16


def _wrap(tok, model_max_length: int):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=UNK, bos_token=BOS, eos_token=EOS,
                                   pad_token=PAD, model_max_length=model_max_length, padding_side="right")


def train_base_tokenizer(texts: Iterable[str], vocab_size: int, model_max_length: int):
    """A byte-level BPE (``PreTrainedTokenizerFast``) trained on ``texts``; deterministic for equal input."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))])
    for i, special in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(special) != i:
            raise RuntimeError(f"special token {special!r} got id {tok.token_to_id(special)}, expected {i}")
    return _wrap(tok, model_max_length)


def extend_for_code(base):
    """The code expert's tokenizer: ``base`` plus the 16 special :data:`CODE_TOKENS`, appended in order."""
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_str(base.backend_tokenizer.to_str())
    vocab = tok.get_vocab()
    clash = [t for t in CODE_TOKENS if t in vocab]
    if clash:
        raise RuntimeError(f"code tokens {clash} already exist in the base vocabulary")
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in CODE_TOKENS])
    return _wrap(tok, base.model_max_length)


def token_byte_lengths(tokenizer) -> list[int]:
    """UTF-8 bytes each token id stands for (0 for special tokens), to turn losses into bits per byte."""
    from tokenizers import pre_tokenizers

    byte_of = {ch: 1 for ch in pre_tokenizers.ByteLevel.alphabet()}
    added_tokens = tokenizer.backend_tokenizer.get_added_tokens_decoder().values()
    special = set(tokenizer.all_special_tokens) | {t.content for t in added_tokens if t.special}
    added = {t.content for t in added_tokens}
    lengths = [0] * len(tokenizer)
    for token, i in tokenizer.get_vocab().items():
        if token in special:
            continue
        lengths[i] = len(token.encode("utf-8")) if token in added else sum(byte_of.get(ch, 1) for ch in token)
    return lengths
