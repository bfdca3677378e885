"""Tiny, randomly initialised models for tests and benchmarks: built in seconds, no network.

The tokenizer is a byte-level BPE trained on a few standard-library modules plus answer lines, so
" A" .. " D" become single tokens (the fast MMLU path); ``letters_as_single_tokens=False`` trains
without those lines, so the letters split and the full-continuation path is exercised instead.
"""

from __future__ import annotations

import inspect


def _corpus(letters_as_single_tokens: bool) -> list[str]:
    import argparse
    import collections
    import json
    import textwrap

    text = [inspect.getsource(m) for m in (argparse, collections, json.decoder, textwrap)]
    if letters_as_single_tokens:
        text += [f"Question?\nA. x\nB. y\nC. z\nD. w\nAnswer: {c}\n\n" for c in "ABCD" * 200]
    return text


def tiny_tokenizer(*, vocab_size: int = 1024, letters_as_single_tokens: bool = True):
    """A ``PreTrainedTokenizerFast`` (byte-level BPE, BOS added to every encoding, pad = eos)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(letters_as_single_tokens), trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="</s>")


def tiny_llama(tokenizer, *, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0,
               max_position_embeddings: int = 2048):
    """A randomly initialised ``LlamaForCausalLM`` matching ``tokenizer``'s vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=max_position_embeddings, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config).eval()
