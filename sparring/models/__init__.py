"""The shipped tiny model and the script that trains it.

``TINY_MODEL`` (also :data:`sparring.paths.TINY_MODEL`, which is all that policies and pools
need of it) is a ~1M-parameter Llama-architecture causal LM with its own byte-level BPE
tokenizer (vocab 1024), pretrained on CPU in a few minutes by
``python -m sparring.models.pretrain`` on transcripts of the suite's own games played by its
scripted agents. It answers in the games' formats (hidden CoT, bracketed moves) but has no
preference between refusing and complying, nor between moves: a starting point for
self-play, tests and CPU demos, not a capable assistant. Load it offline with
``AutoModelForCausalLM.from_pretrained(TINY_MODEL)`` and
``AutoTokenizer.from_pretrained(TINY_MODEL)``.

The prompt contract (what the model was trained on, so what a policy must send): the chat
template renders each message as ``<|{role}|>\\n{content}\\n`` and the generation prompt as
``<|assistant|>\\n``; when the observation asks for hidden CoT (``observation["hidden_cot"]``)
the prompt is pre-filled with ``<think>``. :func:`prompt_text` builds exactly that string; the
model ends its answer with the EOS token ``<|end|>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sparring.envs.parsing import THINK_OPEN as PREFILL
from sparring.envs.parsing import cot_prefill
from sparring.paths import TINY_MODEL


def prompt_text(tokenizer: Any, observation: Mapping[str, Any]) -> str:
    """The exact prompt the tiny model was trained on for one observation."""
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": observation["text"]}], add_generation_prompt=True, tokenize=False
    )
    return chat + cot_prefill(observation)


__all__ = ["PREFILL", "TINY_MODEL", "prompt_text"]
