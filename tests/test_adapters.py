"""LoRA adapters served beside their base model, batched together."""

import asyncio

import pytest
from lm import make_model, make_tokenizer

from sparring.pool import GenerationRequest, InferencePool, SamplingParams

peft = pytest.importorskip("peft")

GREEDY = SamplingParams(temperature=0, max_new_tokens=8)
PROMPT = "the game is rock paper scissors and you move"


def lora(seed):
    import torch

    torch.manual_seed(seed)
    return peft.LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"],
                           init_lora_weights=False)


@pytest.fixture
def pool(tmp_path):
    # A saved adapter, made on a separate copy of the same base.
    donor = peft.get_peft_model(make_model(), lora(7), adapter_name="saved")
    donor.save_pretrained(tmp_path / "adapter", selected_adapters=["saved"])
    pool = InferencePool()
    pool.add_policy("base", make_model(), make_tokenizer())
    pool.add_adapter("fresh", "base", lora(1))
    pool.add_adapter("saved", "base", tmp_path / "adapter" / "saved")
    return pool


def generate_all(pool, policies):
    async def main():
        return await asyncio.gather(*(pool.generate(GenerationRequest(p, PROMPT, GREEDY)) for p in policies))
    return asyncio.run(main())


def test_base_and_adapters_batch_together_and_match_running_alone(pool):
    mixed = generate_all(pool, ["base", "fresh", "saved", "base"])
    assert pool.stats.batch_sizes[-1] == 4
    alone = {p: generate_all(pool, [p])[0] for p in ("base", "fresh", "saved")}
    for gen, policy in zip(mixed, ["base", "fresh", "saved", "base"]):
        assert gen.logprobs == pytest.approx(alone[policy].logprobs, abs=1e-5)
    plain = InferencePool()
    plain.add_policy("base", make_model(), make_tokenizer())
    assert generate_all(plain, ["base"])[0].logprobs == pytest.approx(alone["base"].logprobs, abs=1e-5)
    assert alone["fresh"].logprobs != pytest.approx(alone["base"].logprobs, abs=1e-3)


def test_adapters_cost_a_fraction_of_full_copies(pool):
    copies = InferencePool()
    for name in ("base", "fresh", "saved"):
        copies.add_policy(name, make_model(), make_tokenizer())
    assert pool.memory_bytes() < 0.5 * copies.memory_bytes()


def test_adapter_weight_update_touches_only_that_adapter(pool):
    from sparring.pool.adapters import adapter_state

    before = {p: g for p, g in zip(("base", "saved"), generate_all(pool, ["base", "saved"]))}
    new = {k: v * 3 for k, v in adapter_state(pool.models["fresh"], "fresh").items()}
    assert pool.update_weights("fresh", new) == 1
    after = dict(zip(("base", "saved", "fresh"), generate_all(pool, ["base", "saved", "fresh"])))
    assert after["fresh"].weights_version == 1 and after["base"].weights_version == 0
    for p in ("base", "saved"):
        assert after[p].logprobs == pytest.approx(before[p].logprobs, abs=1e-6)
    with pytest.raises(ValueError, match="do not fit"):
        pool.update_weights("fresh", {"nonsense": new[next(iter(new))]})
    with pytest.raises(ValueError, match="carries LoRA adapters"):
        pool.update_weights("base", make_model().state_dict())
