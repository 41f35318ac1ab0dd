"""The inference pool: batching invariance, exact logprobs, weight updates, bad requests."""

import asyncio
import math

import pytest
import torch
from lm import make_model, make_tokenizer, teacher_forced

from sparring.pool import (
    BackendError,
    GenerationRequest,
    InferencePool,
    InvalidRequestError,
    PoolClosedError,
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


def test_the_requests_beside_a_bad_one_are_served_in_one_batch(pool):
    """Bad requests are picked out of their batch by their prompts, not by serving every
    request of it alone."""
    async def main():
        good = [pool.generate(GenerationRequest("p", t, GREEDY)) for t in PROMPTS]
        bad = [pool.generate(GenerationRequest("p", "how " * 300, GREEDY)),
               pool.generate(GenerationRequest("p", "", GREEDY, prefill=""))]
        return await asyncio.gather(*good, *bad, return_exceptions=True)

    *good, too_long, empty = run(main())
    assert isinstance(empty, InvalidRequestError) and "empty prompt" in str(empty)
    assert isinstance(too_long, InvalidRequestError) and "exceeds the context" in str(too_long)
    assert all(not isinstance(g, Exception) for g in good), good
    assert pool.stats.batch_sizes == [len(PROMPTS)]
    alone = [run(pool.generate(GenerationRequest("p", t, GREEDY))) for t in PROMPTS]
    assert [g.completion_ids for g in good] == [g.completion_ids for g in alone]


def test_messages_the_chat_template_refuses_fail_alone():
    """A template that raises for some messages (as Gemma's does for a system role) fails
    only the requests it cannot render, whatever they are batched with."""
    tok = make_tokenizer()
    tok.chat_template = ("{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not "
                         "supported') }}{% endif %}<|{{ m.role }}|>\n{{ m.content }}\n{% endfor %}<|assistant|>\n")
    pool = InferencePool(PoolConfig(max_wait_ms=20))
    pool.add_policy("p", make_model(), tok)
    user = ({"role": "user", "content": "how can I help"},)

    async def main():
        good = [pool.generate(GenerationRequest("p", user, GREEDY)) for _ in range(3)]
        bad = pool.generate(GenerationRequest("p", ({"role": "system", "content": "be brief"}, *user), GREEDY))
        return await asyncio.gather(*good, bad, return_exceptions=True)

    *good, bad = run(main())
    assert isinstance(bad, InvalidRequestError) and "System role not supported" in str(bad)
    assert all(not isinstance(g, Exception) for g in good), good
    with pytest.raises(InvalidRequestError, match="prefill must be a string"):
        GenerationRequest("p", "hi", GREEDY, prefill=None)


def add_broken(pool):
    """Serve 'broken': a model of p's config whose every forward pass fails."""
    class Broken(torch.nn.Module):
        config = pool.models["p"].model.config
        generation_config = pool.models["p"].model.generation_config

        def forward(self, **kwargs):
            raise RuntimeError("device lost")

    pool.add_policy("broken", Broken(), make_tokenizer())


def test_scoring_checks_the_context_and_types_a_failing_model(pool):
    with pytest.raises(InvalidRequestError, match="exceeds the context"):
        run(pool.score("p", "how " * 300, [" sorry"]))

    add_broken(pool)
    for call in (pool.score("broken", "how can I", [" help"]), pool.prompt_logprobs("broken", "how can I help")):
        with pytest.raises(BackendError, match="device lost"):
            run(call)


@pytest.mark.parametrize("values", [{"max_wait_ms": float("inf")}, {"max_wait_ms": float("nan")},
                                    {"max_batch_size": True}, {"timeout_s": float("nan")}])
def test_a_pool_config_that_would_hang_or_is_no_number_is_refused(values):
    from sparring.errors import ConfigError

    with pytest.raises(ConfigError, match=next(iter(values))):
        PoolConfig(**values)


@pytest.mark.parametrize(("kwargs", "match"), [({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"),
                                               ({"max_new_tokens": 0}, "max_new_tokens"), ({"stop": [""]}, "stop")])
def test_bad_sampling_params_name_the_value(kwargs, match):
    with pytest.raises(InvalidRequestError, match=match):
        SamplingParams(**kwargs)


def test_backend_crash_fails_its_requests_cleanly(pool):
    add_broken(pool)

    async def main():
        return await asyncio.gather(pool.generate(GenerationRequest("broken", "hi", GREEDY)),
                                    pool.generate(GenerationRequest("p", "hi", GREEDY)), return_exceptions=True)

    broken, fine = run(main())
    assert isinstance(broken, BackendError) and "device lost" in str(broken)
    assert fine.finish_reason == "length"


def test_the_factory_builds_pools_from_one_config_and_serves_models_by_spec(tmp_path):
    from sparring.errors import ConfigError, ModelNotFoundError
    from sparring.pool import PoolConfig, build_pool, serve_model

    model, tok = make_model(), make_tokenizer()
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    pool = build_pool(PoolConfig(max_batch_size=8), {"a": str(tmp_path / "m")})
    assert pool.policies == ["a"] and pool.config.max_batch_size == 8
    assert serve_model(pool, "a") == "a"  # already served: nothing loaded twice
    assert serve_model(pool, tmp_path / "m", name="b") == "b"
    assert pool.info("b").weights_version == 0 and pool.tokenizer("b") is not None
    with pytest.raises(ModelNotFoundError, match="not found"):
        serve_model(pool, tmp_path / "missing")
    with pytest.raises(ConfigError, match="base_url"):
        PoolConfig(backend="remote")


def test_an_adapter_is_served_on_a_base_started_as_its_pool_needs(tmp_path):
    import json

    from sparring.pool import serve_model
    from sparring.pool.vllm_pool import VLLMPool
    from sparring.runs import TINY_MODEL

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "tiny", "r": 40}))

    class Recorder:  # what vLLM's pool is asked, without an engine
        adapter_base_kwargs = VLLMPool.adapter_base_kwargs

        def __init__(self):
            self.policies, self.calls = [], []

        def add_policy(self, name, location, **kwargs):
            self.policies.append(name)
            self.calls.append(("policy", name, location, kwargs))

        def add_adapter(self, name, base, path):
            self.policies.append(name)
            self.calls.append(("adapter", name, base, path))

    pool = Recorder()
    assert serve_model(pool, adapter, name="rival") == "rival"
    assert pool.calls == [
        ("policy", "tiny", str(TINY_MODEL), {"enable_lora": True, "max_lora_rank": 64, "dtype": "bfloat16"}),
        ("adapter", "rival", "tiny", adapter.resolve()),
    ]


def test_scoring_after_a_weight_update_uses_the_new_weights():
    pool = InferencePool()
    pool.add_policy("p", make_model(seed=0), make_tokenizer())
    other = InferencePool()
    other.add_policy("q", make_model(seed=3), make_tokenizer())

    async def main():
        await pool.generate(GenerationRequest("p", "how can I help", SamplingParams(temperature=0, max_new_tokens=2)))
        pool.update_weights("p", make_model(seed=3).state_dict())  # queued: the batcher is alive
        assert pool.info("p").weights_version == 1
        return await pool.score("p", "how can I", [" help"]), await other.score("q", "how can I", [" help"])

    updated, expected = asyncio.run(main())
    assert updated == pytest.approx(expected, abs=1e-6)


def _variants():
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tok_size = len(make_tokenizer())
    common = dict(vocab_size=tok_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  max_position_embeddings=256, pad_token_id=0, eos_token_id=1, bos_token_id=None)
    torch.manual_seed(5)
    yield "llama", make_model()
    yield "llama-gqa", LlamaForCausalLM(LlamaConfig(**common, num_attention_heads=4, num_key_value_heads=2)).eval()
    yield "qwen2-bias", Qwen2ForCausalLM(Qwen2Config(**common, num_attention_heads=4, num_key_value_heads=2)).eval()


def assert_decoders_agree(loaded, requests):
    """The fast decoder and the model's own forward generate the same tokens and logprobs."""
    from sparring.pool.transformers_backend import generate_batch

    fast = generate_batch(loaded, requests, torch.Generator().manual_seed(0))
    loaded.use_fast_decoder = False
    reference = generate_batch(loaded, requests, torch.Generator().manual_seed(0))
    loaded.use_fast_decoder = True
    for a, b in zip(fast, reference):
        assert a.completion_ids == b.completion_ids and a.text == b.text and a.finish_reason == b.finish_reason
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


@pytest.mark.parametrize("name", ["llama", "llama-gqa", "qwen2-bias"])
def test_the_fast_decoder_generates_what_the_models_own_forward_does(name):

    model = dict(_variants())[name]
    pool = InferencePool()
    pool.add_policy("p", model, make_tokenizer())
    loaded = pool.models["p"]
    assert loaded.fast_decoding
    requests = [GenerationRequest("p", text, sampling) for text in PROMPTS
                for sampling in (GREEDY, SamplingParams(temperature=1.0, max_new_tokens=12, seed=7))]
    assert_decoders_agree(loaded, requests)


def test_models_without_the_fast_layout_decode_through_their_own_forward():
    from peft import LoraConfig

    pool = InferencePool()
    pool.add_policy("p", make_model(), make_tokenizer())
    assert pool.models["p"].fast_decoding
    pool.add_adapter("a", "p", LoraConfig(r=2, target_modules=["q_proj"]))
    assert not pool.models["p"].fast_decoding  # an adapter's rows take the model's own forward
    gen = run(pool.generate(GenerationRequest("a", "how can I help", GREEDY)))
    assert len(gen.completion_ids) == len(gen.logprobs) > 0


def test_prompts_that_begin_alike_share_their_beginning_and_generate_the_same():
    from sparring.pool.fast_decode import shared_prefixes

    words = "the game is rock paper scissors and you move what is the answer to the user message please".split()
    head = " ".join(words * 3)  # a long common beginning, as a role's instructions are
    texts = [f"{head} {tail}" for tail in ("how can I help", "sorry", "step one two", "think")] + PROMPTS
    pool = InferencePool()
    pool.add_policy("p", make_model(), make_tokenizer())
    loaded = pool.models["p"]
    ids = [loaded.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    groups = shared_prefixes(ids)
    assert [sorted(rows) for _, rows in groups] == [[0, 1, 2, 3]] and groups[0][0] >= 48
    requests = [GenerationRequest("p", t, s) for t in texts
                for s in (GREEDY, SamplingParams(temperature=1.0, max_new_tokens=10, seed=2))]
    assert_decoders_agree(loaded, requests)


def test_unwritten_buffer_memory_never_reaches_a_generation(monkeypatch):
    """Padding columns are masked, but 0 x NaN is NaN: whatever fresh memory holds must not leak."""
    from sparring.pool.transformers_backend import generate_batch

    empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *a, **k: empty(*a, **k).fill_(float("nan")))
    words = "the game is rock paper scissors and you move what is the answer".split()
    texts = [" ".join(words * 3) + tail for tail in (" sorry", " think")] + PROMPTS
    pool = InferencePool()
    pool.add_policy("p", make_model(), make_tokenizer())
    requests = [GenerationRequest("p", t, GREEDY) for t in texts]
    for gen in generate_batch(pool.models["p"], requests, torch.Generator().manual_seed(0)):
        assert gen.logprobs and all(math.isfinite(x) for x in gen.logprobs)


def test_shared_prefix_groups_save_the_most_and_leave_every_row_a_token():
    from sparring.pool.fast_decode import shared_prefixes

    a, b = list(range(100)), [7] * 50
    prompts = [a + [1], a + [2], a[:20] + b + [3], a[:20] + b + [4], [5, 6, 7], a[:20] + b]
    assert sorted(shared_prefixes(prompts)) == [(69, [2, 3, 5]), (100, [0, 1])]  # 70 shared, one short of row 5's end
    assert shared_prefixes([[1] * 30, [1] * 30]) == [(29, [0, 1])]
    assert shared_prefixes([[1, 2, 3], [1, 2, 4]]) == []  # too short to be worth it


def test_weight_updates_queued_together_each_take_a_version(pool):
    first, second = make_model(seed=1).state_dict(), make_model(seed=2).state_dict()
    long = SamplingParams(temperature=0, max_new_tokens=30)

    async def main():
        in_flight = asyncio.ensure_future(pool.generate(GenerationRequest("p", PROMPTS[1], long)))
        await asyncio.sleep(0.05)  # the batch has started: both updates queue
        versions = pool.update_weights("p", first), pool.update_weights("p", second)
        assert pool.info("p").weights_version == 2
        await in_flight
        return versions, await pool.generate(GenerationRequest("p", PROMPTS[1], long))

    versions, after = run(main())
    assert versions == (1, 2) and after.weights_version == 2
    assert torch.equal(pool.models["p"].model.model.embed_tokens.weight, second["model.embed_tokens.weight"])


def test_closing_the_pool_fails_requests_in_a_running_batch(pool, monkeypatch):
    import time

    import sparring.pool.pool as pool_module

    real = pool_module.generate_batch

    def slow(*args, **kwargs):
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(pool_module, "generate_batch", slow)

    async def main():
        running = asyncio.ensure_future(pool.generate(GenerationRequest("p", PROMPTS[0], GREEDY)))
        await asyncio.sleep(0.1)  # its batch is on the worker
        await pool.aclose()
        with pytest.raises(PoolClosedError):
            await asyncio.wait_for(running, 3)
        with pytest.raises(PoolClosedError):
            await pool.score("p", "hi", [" there"])

    run(main())


def test_a_row_without_a_nucleus_keeps_every_token_beside_one_with_a_nucleus():
    from sparring.pool.transformers_backend import _truncate

    logits = torch.randn(2, 150_000, generator=torch.Generator().manual_seed(0)) * 3  # float sums reach 1 early
    out = _truncate(logits, [SamplingParams(top_p=1.0), SamplingParams(top_p=0.9)])
    assert not torch.isinf(out[0]).any() and torch.isinf(out[1]).any()
