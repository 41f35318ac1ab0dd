"""The inference pool: batching invariance, exact logprobs, weight updates, bad requests."""

import asyncio

import pytest
import torch
from lm import make_model, make_tokenizer, teacher_forced

from sparring.pool import (
    BackendError,
    GenerationRequest,
    InferencePool,
    InvalidRequestError,
    PoolConfig,
    SamplingParams,
)

PROMPTS = ["how can I help", "the game is rock paper scissors and you move", "sorry",
           "what is the answer to the user message please think step one two"]
GREEDY = SamplingParams(temperature=0, max_new_tokens=10)


@pytest.fixture
def pool():
    p = InferencePool(PoolConfig(max_wait_ms=20))
    p.add_policy("p", make_model(), make_tokenizer())
    return p


def run(coro):
    return asyncio.run(coro)


def test_greedy_text_and_logprobs_do_not_change_with_batching(pool):
    async def main():
        alone = [await pool.generate(GenerationRequest("p", text, GREEDY)) for text in PROMPTS]
        together = await asyncio.gather(*(pool.generate(GenerationRequest("p", t, GREEDY)) for t in PROMPTS))
        return alone, together

    alone, together = run(main())
    assert pool.stats.batch_sizes[-1] == len(PROMPTS)  # really one mixed-length batch
    for a, b in zip(alone, together):
        assert a.text == b.text and a.completion_ids == b.completion_ids
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


@pytest.mark.parametrize("sampling", [GREEDY, SamplingParams(temperature=0.7, max_new_tokens=10, seed=3),
                                      SamplingParams(temperature=1.3, top_k=5, max_new_tokens=10, seed=4)])
def test_logprobs_equal_a_teacher_forced_forward_pass(pool, sampling):
    async def main():
        return await asyncio.gather(*(pool.generate(GenerationRequest("p", t, sampling)) for t in PROMPTS))

    model = pool.models["p"].model
    for gen in run(main()):
        assert list(gen.logprobs) == pytest.approx(teacher_forced(model, gen, sampling), abs=1e-4)


def test_seeded_sampling_is_reproducible_and_batch_independent(pool):
    params = SamplingParams(temperature=1.0, max_new_tokens=8, seed=11)

    async def main():
        alone = await pool.generate(GenerationRequest("p", PROMPTS[0], params))
        mixed = await asyncio.gather(*(pool.generate(GenerationRequest("p", t, params)) for t in PROMPTS))
        return alone, mixed[0]

    alone, mixed = run(main())
    assert alone.completion_ids == mixed.completion_ids


def test_chat_messages_prefill_and_stop_strings(pool):
    messages = [{"role": "user", "content": "what is the answer"}]
    free = run(pool.generate(GenerationRequest("p", messages, GREEDY, prefill="sure")))
    prompt = pool.models["p"].tokenizer.decode(free.prompt_ids)
    assert prompt.startswith("<|user|>") and prompt.rstrip().endswith("sure")
    stop = free.text.split()[1]
    params = SamplingParams(temperature=0, max_new_tokens=10, stop=(stop,))
    stopped = run(pool.generate(GenerationRequest("p", messages, params, prefill="sure")))
    assert stopped.finish_reason == "stop" and stopped.text.endswith(stop)
    assert free.text.startswith(stopped.text)
    assert len(stopped.completion_ids) == len(stopped.logprobs) < len(free.completion_ids)


def test_weight_update_changes_outputs_and_spares_requests_in_flight(pool):
    new_weights = make_model(seed=1).state_dict()
    long = SamplingParams(temperature=0, max_new_tokens=30)

    async def main():
        before = await pool.generate(GenerationRequest("p", PROMPTS[1], long))
        in_flight = asyncio.ensure_future(pool.generate(GenerationRequest("p", PROMPTS[1], long)))
        await asyncio.sleep(0.05)  # the batch has started
        pool.update_weights("p", new_weights)
        during = await in_flight
        after = await pool.generate(GenerationRequest("p", PROMPTS[1], long))
        return before, during, after

    before, during, after = run(main())
    assert during.completion_ids == before.completion_ids and during.weights_version == 0
    assert after.weights_version == 1 and after.logprobs != pytest.approx(before.logprobs, abs=1e-3)


def test_weight_update_from_a_checkpoint(pool, tmp_path):
    other = make_model(seed=2)
    other.save_pretrained(tmp_path, safe_serialization=True)
    pool.update_weights("p", tmp_path)
    assert torch.equal(pool.models["p"].model.model.embed_tokens.weight, other.model.embed_tokens.weight)
    with pytest.raises(FileNotFoundError):
        pool.update_weights("p", tmp_path / "missing")


def test_bad_request_fails_alone_and_the_pool_keeps_serving(pool):
    async def main():
        good = [pool.generate(GenerationRequest("p", t, GREEDY)) for t in PROMPTS]
        bad = pool.generate(GenerationRequest("p", "how " * 300, GREEDY))  # beyond the context
        return await asyncio.gather(*good, bad, return_exceptions=True)

    *good, bad = run(main())
    assert isinstance(bad, InvalidRequestError) and "exceeds the context" in str(bad)
    assert all(g.finish_reason == "length" for g in good)
    with pytest.raises(InvalidRequestError, match="unknown policy 'q'"):
        run(pool.generate(GenerationRequest("q", "hi", GREEDY)))


@pytest.mark.parametrize(("kwargs", "match"), [({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"),
                                               ({"max_new_tokens": 0}, "max_new_tokens"), ({"stop": [""]}, "stop")])
def test_bad_sampling_params_name_the_value(kwargs, match):
    with pytest.raises(InvalidRequestError, match=match):
        SamplingParams(**kwargs)


def test_backend_crash_fails_its_requests_cleanly(pool):
    class Broken(torch.nn.Module):
        config = pool.models["p"].model.config
        generation_config = pool.models["p"].model.generation_config

        def forward(self, **kwargs):
            raise RuntimeError("device lost")

    pool.add_policy("broken", Broken(), make_tokenizer())

    async def main():
        return await asyncio.gather(pool.generate(GenerationRequest("broken", "hi", GREEDY)),
                                    pool.generate(GenerationRequest("p", "hi", GREEDY)), return_exceptions=True)

    broken, fine = run(main())
    assert isinstance(broken, BackendError) and "device lost" in str(broken)
    assert fine.finish_reason == "length"
