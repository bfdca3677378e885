"""Tiny Llama models and byte-level BPE tokenizers built inside the test session (no hub)."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def tiny_tokenizer(texts: list[str], vocab_size: int = 300, extra_tokens: list[str] | None = None):
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    if extra_tokens:
        fast.add_tokens(extra_tokens)
    return fast


def tiny_llama(tokenizer, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0, tie: bool = False,
               max_position_embeddings: int = 512):
    import torch

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=max_position_embeddings, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=tie)
    return LlamaForCausalLM(config)


def save_pair(model, tokenizer, path: Path) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# --- tokenizers and models for benchmark tests (MMLU letters as single tokens, or not) ----------------

def _benchmark_corpus(letters_as_single_tokens: bool) -> list[str]:
    import argparse
    import collections
    import inspect
    import json
    import textwrap

    text = [inspect.getsource(m) for m in (argparse, collections, json.decoder, textwrap)]
    if letters_as_single_tokens:
        text += [f"Question?\nA. x\nB. y\nC. z\nD. w\nAnswer: {c}\n\n" for c in "ABCD" * 200]
    return text


def benchmark_tokenizer(*, vocab_size: int = 1024, letters_as_single_tokens: bool = True):
    """A byte-level BPE trained on a few standard-library modules plus answer lines, so " A" .. " D"
    are single tokens (the fast MMLU path); ``letters_as_single_tokens=False`` trains without those
    lines, so the letters split and the full-continuation path runs instead. BOS is added to every
    encoding; pad = eos."""
    from tokenizers import processors

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_benchmark_corpus(letters_as_single_tokens), trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="</s>")


def benchmark_llama(tokenizer, *, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0,
                    max_position_embeddings: int = 2048):
    """A randomly initialised Llama for ``tokenizer``, in eval mode, with a 2,048-token context."""
    return tiny_llama(tokenizer, hidden=hidden, layers=layers, heads=heads, seed=seed,
                      max_position_embeddings=max_position_embeddings).eval()
