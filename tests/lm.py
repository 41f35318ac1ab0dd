"""Tiny language models built inside the tests (no hub, no shipped files needed)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

WORDS = ("the a to of and is it you I can not help with that here how what game move rock paper "
         "scissors cooperate defect sorry sure answer think plan user message please step one two").split()
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def make_tokenizer() -> PreTrainedTokenizerFast:
    specials = ["<|pad|>", "<|end|>", "<|unk|>", "<|user|>", "<|assistant|>"]
    vocab = {w: i for i, w in enumerate(specials + WORDS + list("[]<>/.,?!\n"))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>",
                                   unk_token="<|unk|>", additional_special_tokens=specials[3:])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_model(seed: int = 0, vocab_size: int | None = None) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    tok_size = vocab_size or len(make_tokenizer())
    config = LlamaConfig(vocab_size=tok_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         pad_token_id=0, eos_token_id=1, bos_token_id=None, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


def teacher_forced(model, gen, sampling):
    """Logprobs of the generated tokens from one forward pass over prompt + completion, under
    the distribution they were drawn from."""
    ids = torch.tensor([list(gen.prompt_ids) + list(gen.completion_ids)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(gen.prompt_ids) - 1: -1].float()
    if not sampling.greedy:
        logits = logits / sampling.temperature
        if sampling.top_k:
            kth = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.log_softmax(logits, -1).gather(1, torch.tensor(gen.completion_ids)[:, None])[:, 0].tolist()


def each_dropout(learner, rates: Sequence[float], step: Callable[[], object]) -> list:
    """``step()`` once per attention-dropout rate, each from the learner's same start (weights
    and optimizer state), its model in train mode as a trainer hands it over."""
    start = {k: v.clone() for k, v in learner.model.state_dict().items()}
    optimizer = copy.deepcopy(learner.optimizer.state_dict())
    results = []
    for rate in rates:
        learner.model.load_state_dict(start)
        learner.optimizer.load_state_dict(optimizer)
        learner.model.train()
        for module in learner.model.modules():
            if hasattr(module, "attention_dropout"):
                module.attention_dropout = rate
        torch.manual_seed(0)
        results.append(step())
    return results
