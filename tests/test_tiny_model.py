"""The shipped tiny model: loads offline, is small, keeps the prompt contract, answers in format."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sparring.envs.parsing import split_hidden_cot
from sparring.models import TINY_MODEL, prompt_text
from sparring.models.corpus import mutator_units, redteam_units


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(TINY_MODEL, local_files_only=True)


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(TINY_MODEL, local_files_only=True).eval()


def test_model_is_tiny_and_consistent_with_its_tokenizer(tok, model):
    assert sum(p.numel() for p in model.parameters()) < 3_000_000
    size = sum(f.stat().st_size for f in TINY_MODEL.iterdir() if f.is_file())
    assert size < 8 * 2**20
    assert (TINY_MODEL / "README.md").is_file()
    assert len(tok) == model.config.vocab_size == 1024
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>"
    assert model.config.eos_token_id == model.generation_config.eos_token_id == tok.eos_token_id
    assert model.config.pad_token_id == model.generation_config.pad_token_id == tok.pad_token_id
    assert tok.padding_side == "left"


def test_tokenizer_round_trips_tags_and_unicode(tok):
    text = "why </think> <answer> Sure: naïve café, 東京, 😀 [rock]\n\ttabs </answer>"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=True) == text  # the tags are not special
    for tag in ("<think>", "</think>", "<answer>", "</answer>", "<search>", "</search>", "<information>",
                "</information>", "<|end|>", "<|user|>"):
        assert len(tok.encode(tag, add_special_tokens=False)) == 1, tag
    end = tok.encode("ok<|end|>", add_special_tokens=False)
    assert tok.decode(end, skip_special_tokens=True) == "ok"


def test_chat_template_and_prefill_contract(tok):
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "Hello"}], add_generation_prompt=True, tokenize=False
    )
    assert chat == "<|user|>\nHello\n<|assistant|>\n"
    assert prompt_text(tok, {"text": "Hello", "hidden_cot": 0}) == chat
    hidden = "then </think>, then"
    assert prompt_text(tok, {"text": hidden, "hidden_cot": 1}) == f"<|user|>\n{hidden}\n<|assistant|>\n<think>"


def test_greedy_answers_heldout_defender_prompts_in_hidden_cot_format(tok, model):
    units = redteam_units(40, np.random.default_rng(0), seeds="heldout", hidden_cot_fraction=1.0,
                          defenders_only=True)
    observations = [unit[0].observation_dict for unit in units][:4]
    enc = tok([prompt_text(tok, o) for o in observations], return_tensors="pt", padding=True,
              add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=192, do_sample=False)
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    # Measured when it shipped: 64 of 64 held-out prompts valid greedily, 98% sampled at T=1.
    assert sum(split_hidden_cot(t).valid for t in texts) >= 3, texts


def test_sampled_mutator_writes_a_new_one_line_prompt_on_heldout_parents(tok, model):
    from sparring.models.pretrain import generate, mutator_result

    observations = [unit[0].observation_dict for unit in
                    mutator_units(16, np.random.default_rng(0), seeds="heldout", hidden_cot_fraction=1.0)]
    torch.manual_seed(0)
    texts = generate(model, tok, observations, sample=True, max_new_tokens=128)
    results = [mutator_result(o, t) for o, t in zip(observations, texts)]
    # Measured when it shipped: 73% valid and novel sampled at T=1, 88% greedily (64 prompts).
    assert sum(valid and novel for valid, novel in results) >= 8, texts


def test_router_asks_an_expert_then_passes_the_reply_on(tok, model):
    from sparring.models.corpus import router_units
    from sparring.models.pretrain import generate, router_result

    units = list(router_units(20, np.random.default_rng(0), data="heldout"))
    observations = [unit[0].observation_dict for unit in units]  # before a call, after a reply, ...
    texts = generate(model, tok, observations, sample=False, max_new_tokens=64)
    results = [router_result(o, t) for o, t in zip(observations, texts)]
    # Measured when it shipped (64 prompts): the grammar 100% right; the question or the reply
    # copied as written 22% greedily, 17% sampled (the unseen names are what it gets wrong).
    assert sum(valid for valid, _ in results) >= 36, texts
    assert sum(right for _, right in results) >= 4, texts
