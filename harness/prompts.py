"""The one instruction format used for fine-tuning, validation and the zoo's instruction tuning."""

from __future__ import annotations

PROMPT_TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n"


def format_prompt(instruction: str) -> str:
    """Alpaca-style prompt; the response follows directly and ends with the tokenizer's EOS."""
    return PROMPT_TEMPLATE.format(instruction=instruction.strip())
