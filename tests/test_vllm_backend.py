"""The vLLM backend: the pool contract served by vLLM's async engine.

The conversion helpers, and the pool's weights-version gate on a stand-in engine, are checked
everywhere; the engine itself only where vLLM and a CUDA GPU are present (the ``TestOnGPU``
class), on the shipped tiny model.
"""

import asyncio
import copy
import importlib.util
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from lm import teacher_forced
from transformers import AutoModelForCausalLM

from sparring.envs.parsing import THINK_OPEN as PREFILL
from sparring.paths import TINY_MODEL
from sparring.pool import (
    BackendError,
    GenerationRequest,
    InvalidRequestError,
    Pool,
    SamplingParams,
)
from sparring.pool.transformers_backend import check_state_fits, render_request
from sparring.pool.vllm_pool import (
    VLLMPool,
    finish_reason,
    generation_from_output,
    meta_parameters,
    prompt_logprobs_of,
    vllm_sampling_kwargs,
)
from sparring.runs import safetensors_shapes

GREEDY = SamplingParams(temperature=0, max_new_tokens=16)
LONG = SamplingParams(temperature=0, max_new_tokens=32)
PROMPTS = [
    "Hello",
    "You are the defender. Answer the user: how do I bake bread? Think first, then answer. </think>",
    "Rock, paper or scissors? Reply with [rock], [paper] or [scissors].",
    ("You are the attacker. Rewrite this request so it looks harmless: tell me a secret. "
     "Think step by step </think> then give the rewrite."),
]


def request(policy, text, sampling=GREEDY):
    return GenerationRequest(policy, ({"role": "user", "content": text},), sampling, prefill=PREFILL)


def run(coro):
    return asyncio.run(coro)


# -- the conversion helpers (no vLLM needed) ---------------------------------------------------
def test_sampling_params_map_to_vllm_keywords():
    greedy = vllm_sampling_kwargs(SamplingParams(temperature=0, max_new_tokens=7, stop="</answer>"))
    assert greedy == {"n": 1, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "max_tokens": 7,
                      "stop": ["</answer>"], "include_stop_str_in_output": True, "seed": None,
                      "logprobs": 0, "skip_special_tokens": True}
    sampled = vllm_sampling_kwargs(SamplingParams(temperature=0.7, top_p=0.9, top_k=5, seed=3,
                                                  stop=("a", "b")))
    assert (sampled["temperature"], sampled["top_p"], sampled["top_k"], sampled["seed"]) == (0.7, 0.9, 5, 3)
    assert sampled["stop"] == ["a", "b"] and sampled["max_tokens"] == 64


@pytest.mark.parametrize(("vllm_reason", "ours"), [("stop", "stop"), ("length", "length"), ("abort", "error"),
                                                   ("error", "error"), ("repetition", "error"), (None, "error")])
def test_finish_reasons_map_to_ours(vllm_reason, ours):
    assert finish_reason(vllm_reason) == ours


def fake_output(token_ids, logprobs, reason="stop"):
    positions = [{token: SimpleNamespace(logprob=lp), token + 1: SimpleNamespace(logprob=-9.0)}
                 for token, lp in zip(token_ids, logprobs)]
    completion = SimpleNamespace(text="sure </answer>", token_ids=token_ids, logprobs=positions,
                                 finish_reason=reason, stop_reason="</answer>")
    return SimpleNamespace(request_id="r1", prompt_token_ids=[4, 5, 6], outputs=[completion])


def test_generation_from_a_vllm_output_keeps_the_sampled_tokens_logprobs():
    gen = generation_from_output(fake_output([7, 8], [-0.5, -1.25]), "tiny", 3)
    assert (gen.text, gen.prompt_ids, gen.completion_ids) == ("sure </answer>", (4, 5, 6), (7, 8))
    assert gen.logprobs == (-0.5, -1.25) and gen.finish_reason == "stop"
    assert (gen.policy, gen.weights_version) == ("tiny", 3)
    assert gen.extra == {"request_id": "r1", "vllm_finish_reason": "stop", "stop_reason": "</answer>"}
    assert generation_from_output(fake_output([7], [-0.5], "abort"), "tiny", 0).finish_reason == "error"
    broken = fake_output([7, 8], [-0.5, -1.25])
    broken.outputs[0].logprobs = broken.outputs[0].logprobs[:1]
    with pytest.raises(BackendError, match="1 logprobs for 2 tokens"):
        generation_from_output(broken, "tiny", 0)


def test_without_vllm_the_pool_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'sparring\[vllm\]'.*CUDA GPU"):
        VLLMPool()


def test_importing_the_pool_does_not_import_vllm():
    code = "import sys, sparring.pool, sparring.pool.vllm_pool; assert 'vllm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_full_updates_are_checked_against_the_models_shapes_without_loading_it():
    parameters, keys = meta_parameters(str(TINY_MODEL))
    assert all(p.device.type == "meta" for p in parameters.values())
    shipped = safetensors_shapes(TINY_MODEL)
    check_state_fits("policy 'tiny'", parameters, keys, shipped)  # the shipped checkpoint fits
    wrong = dict(shipped, **{"model.embed_tokens.weight": torch.empty(3, 3, device="meta")})
    with pytest.raises(ValueError, match="wrong shape"):
        check_state_fits("policy 'tiny'", parameters, keys, wrong)
    with pytest.raises(FileNotFoundError):
        safetensors_shapes(TINY_MODEL / "missing")


def test_prompt_logprobs_are_read_from_vllms_output_skipping_the_first_token():
    positions = [None, {5: SimpleNamespace(logprob=-0.5), 9: SimpleNamespace(logprob=-3.0)},
                 {6: SimpleNamespace(logprob=-1.25)}]
    assert prompt_logprobs_of(SimpleNamespace(prompt_logprobs=positions), [4, 5, 6], "tiny") == [-0.5, -1.25]
    with pytest.raises(BackendError, match="2 prompt logprobs for 3 tokens"):
        prompt_logprobs_of(SimpleNamespace(prompt_logprobs=positions[:2]), [4, 5, 6], "tiny")


class _FakeEngine:
    """vLLM's AsyncLLM as far as the pool's gate sees it: each request reads the weights it
    starts on (every prompt token's logprob is minus that version) and takes a few ms; a
    prompt over 40 tokens fails; a reload asserts that nothing is running."""

    def __init__(self):
        self.model_config = SimpleNamespace(max_model_len=256)
        self.vllm_config = SimpleNamespace(lora_config=None)
        self.weights, self.running, self.reloads = 0, 0, []

    async def generate(self, prompt, sampling, request_id, lora_request=None):
        self.running += 1
        weights = self.weights
        ids = prompt["prompt_token_ids"]
        try:
            await asyncio.sleep(0.002 if len(ids) > 40 else 0.02)
            if len(ids) > 40:
                raise RuntimeError("CUDA error: an illegal memory access")
        finally:
            self.running -= 1
        yield SimpleNamespace(prompt_logprobs=[None] + [{t: SimpleNamespace(logprob=-float(weights))} for t in ids[1:]])

    async def collective_rpc(self, method, kwargs):
        assert self.running == 0, "weights reloaded under running requests"
        self.weights += 1
        self.reloads.append(method)

    async def reset_prefix_cache(self):
        return True

    def shutdown(self):
        pass


@pytest.fixture
def fake_vllm(monkeypatch):
    """Just enough of the vllm package for VLLMPool to start on a CPU."""
    engine = _FakeEngine()
    modules = {
        "vllm": SimpleNamespace(AsyncEngineArgs=lambda **kw: kw, SamplingParams=lambda **kw: kw),
        "vllm.exceptions": SimpleNamespace(VLLMClientError=type("VLLMClientError", (Exception,), {})),
        "vllm.sampling_params": SimpleNamespace(RequestOutputKind=SimpleNamespace(FINAL_ONLY="final")),
        "vllm.v1.engine.async_llm": SimpleNamespace(AsyncLLM=SimpleNamespace(from_engine_args=lambda _: engine)),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    pool = VLLMPool()
    pool.add_policy("tiny", TINY_MODEL)
    yield pool, engine
    run(pool.aclose())


def test_a_scoring_call_runs_on_one_weights_version_whatever_updates_come(fake_vllm):
    """Every continuation of one score call is read on the same weights, and a full update
    loads only once none of them runs (the engine checks), then serves the next call."""
    pool, engine = fake_vllm
    state = {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(TINY_MODEL).state_dict().items()}

    async def main():
        scoring = asyncio.ensure_future(pool.score("tiny", "Say", [" yes", " no", " maybe so"]))
        await asyncio.sleep(0.005)
        update = asyncio.ensure_future(pool.aupdate_weights("tiny", state))
        first = await scoring
        version = await update
        return first, version, await pool.score("tiny", "Say", [" yes", " no"])

    first, version, second = run(main())
    assert first == [0.0, 0.0, 0.0] and version == 1 and engine.reloads == ["reload_weights"]
    assert all(x <= -1 and x == int(x) for x in second)  # −1 a token: the new weights


def test_prompts_render_the_same_for_every_backend():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TINY_MODEL)
    assert render_request(tok, request("p", "Hello")) == "<|user|>\nHello\n<|assistant|>\n<think>"
    assert render_request(tok, GenerationRequest("p", "raw", prefill="<think>")) == "raw<think>"
    tok.chat_template = None
    with pytest.raises(InvalidRequestError, match="chat template"):
        render_request(tok, request("p", "Hello"))


# -- the engine (vLLM on a CUDA GPU) ------------------------------------------------------------
needs_vllm_gpu = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None or not torch.cuda.is_available(),
    reason="needs vLLM and a CUDA GPU",
)
EXACT = {"dtype": "float32", "gpu_memory_utilization": 0.15, "enforce_eager": True, "seed": 0}
# vLLM's LoRA kernels take half precision only, so the adapter checks compare within one engine.
WITH_LORA = {"dtype": "bfloat16", "enable_lora": True, "max_loras": 2, "max_lora_rank": 8,
             "gpu_memory_utilization": 0.15, "enforce_eager": True, "seed": 0}


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    config = peft.LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"],
                             init_lora_weights=False)  # random, nonzero B: the adapter changes outputs
    path = tmp_path_factory.mktemp("adapter")
    peft.get_peft_model(AutoModelForCausalLM.from_pretrained(TINY_MODEL), config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pool(adapter_dir):
    pytest.importorskip("vllm")
    with pytest.MonkeyPatch.context() as env:
        # Full-precision float32 dots in the engine's Triton kernels, for the 1e-3 comparisons.
        env.setenv("TRITON_F32_DEFAULT", "ieee")
        pool = VLLMPool()
        pool.add_policy("tiny", TINY_MODEL, **EXACT)
        pool.add_policy("base", TINY_MODEL, **WITH_LORA)
        pool.add_adapter("lora", "base", adapter_dir)
    yield pool
    run(pool.aclose())


@pytest.fixture(scope="module")
def hf():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(TINY_MODEL)


@needs_vllm_gpu
class TestOnGPU:
    def test_the_pool_keeps_the_contract(self, pool):
        assert isinstance(pool, Pool) and pool.policies == ["tiny", "base", "lora"]
        import vllm

        vllm.SamplingParams(**vllm_sampling_kwargs(SamplingParams(temperature=0.5, top_k=3, stop="x")))

    def test_greedy_output_does_not_change_with_batching(self, pool):
        async def together():
            return await asyncio.gather(*(pool.generate(request("tiny", text)) for text in PROMPTS))

        alone = [run(pool.generate(request("tiny", text))) for text in PROMPTS]
        for a, b in zip(alone, run(together())):
            assert a.text == b.text and a.completion_ids == b.completion_ids
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-3)
            assert (b.policy, b.weights_version) == ("tiny", 0) and b.finish_reason in ("stop", "length")

    @pytest.mark.parametrize("sampling", [GREEDY, SamplingParams(temperature=0.7, max_new_tokens=16, seed=3),
                                          SamplingParams(temperature=1.3, top_k=5, max_new_tokens=16, seed=4)])
    def test_logprobs_equal_a_teacher_forced_forward_pass(self, pool, hf, sampling):
        model, tok = hf

        async def main():
            return await asyncio.gather(*(pool.generate(request("tiny", t, sampling)) for t in PROMPTS))

        gens = run(main())
        for text, gen in zip(PROMPTS, gens):
            rendered = render_request(tok, request("tiny", text))
            assert list(gen.prompt_ids) == tok(rendered, add_special_tokens=False)["input_ids"]
            assert 0 < len(gen.logprobs) == len(gen.completion_ids)
            assert list(gen.logprobs) == pytest.approx(teacher_forced(model, gen, sampling), abs=1e-3)
        if sampling.seed is not None:  # a seeded request draws the same tokens in any batch
            assert run(pool.generate(request("tiny", PROMPTS[0], sampling))).completion_ids == gens[0].completion_ids

    def test_stop_strings_end_the_text(self, pool):
        free = run(pool.generate(request("tiny", PROMPTS[1], LONG)))
        stop = free.text.split()[2]
        stopped = run(pool.generate(request("tiny", PROMPTS[1], SamplingParams(temperature=0, max_new_tokens=32,
                                                                                stop=(stop,)))))
        assert stopped.finish_reason == "stop" and stopped.text.endswith(stop)
        assert free.text.startswith(stopped.text)
        assert len(stopped.completion_ids) == len(stopped.logprobs) < len(free.completion_ids)

    def test_a_bad_request_fails_alone_and_the_pool_keeps_serving(self, pool):
        async def main():
            good = [pool.generate(request("tiny", t)) for t in PROMPTS]
            bad = pool.generate(request("tiny", "hi", SamplingParams(max_new_tokens=2000)))  # past the context
            return await asyncio.gather(*good, bad, return_exceptions=True)

        *good, bad = run(main())
        assert isinstance(bad, InvalidRequestError) and "exceeds the context" in str(bad)
        assert all(g.finish_reason in ("stop", "length") for g in good)
        with pytest.raises(InvalidRequestError, match="unknown policy 'nope'"):
            run(pool.generate(request("nope", "hi")))

    def test_weight_update_changes_output_and_spares_requests_in_flight(self, pool, hf):
        model, _ = hf
        state = {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied
        noise = torch.randn(state["model.embed_tokens.weight"].shape, generator=torch.Generator().manual_seed(0))
        state["model.embed_tokens.weight"] += 0.5 * noise

        async def main():
            before = await pool.generate(request("tiny", PROMPTS[1], LONG))
            in_flight = asyncio.ensure_future(pool.generate(request("tiny", PROMPTS[1], LONG)))
            await asyncio.sleep(0)  # submitted before the update
            version = pool.update_weights("tiny", state)  # inside a loop: returns at once
            after = await pool.generate(request("tiny", PROMPTS[1], LONG))
            return before, await in_flight, version, after

        before, during, version, after = run(main())
        assert version == 1
        assert during.weights_version == 0 and during.completion_ids == before.completion_ids
        assert after.weights_version == 1 and after.logprobs != pytest.approx(before.logprobs, abs=1e-2)
        perturbed = copy.deepcopy(model)
        perturbed.load_state_dict(state, strict=False)
        assert list(after.logprobs) == pytest.approx(teacher_forced(perturbed, after, LONG), abs=1e-3)

        assert pool.update_weights("tiny", TINY_MODEL) == 2  # the shipped checkpoint again, loaded on return
        restored = run(pool.generate(request("tiny", PROMPTS[1], LONG)))
        assert restored.weights_version == 2 and restored.completion_ids == before.completion_ids
        with pytest.raises(ValueError, match="do not fit"):
            pool.update_weights("tiny", {"nonsense": torch.zeros(2)})

    def test_a_lora_adapter_differs_from_its_base_and_updates_alone(self, pool, adapter_dir):
        from safetensors.torch import load_file

        def both():
            async def main():
                return await asyncio.gather(*(pool.generate(request(p, PROMPTS[3])) for p in ("base", "lora")))
            return run(main())

        base, lora = both()  # one engine: the base and its adapter batch together
        assert lora.weights_version == 0 and lora.logprobs != pytest.approx(base.logprobs, abs=1e-2)
        saved = load_file(adapter_dir / "adapter_model.safetensors")
        tripled = {k: v * 3 if "lora_B" in k else v for k, v in saved.items()}

        async def update():
            old = asyncio.ensure_future(pool.generate(request("lora", PROMPTS[3])))
            await asyncio.sleep(0)  # submitted before the update
            version = pool.update_weights("lora", tripled)
            return await old, version, await pool.generate(request("lora", PROMPTS[3]))

        old, version, new = run(update())
        assert version == 1 and old.weights_version == 0 and old.completion_ids == lora.completion_ids
        assert new.weights_version == 1 and new.logprobs != pytest.approx(lora.logprobs, abs=1e-2)
        base_after, lora_after = both()
        assert base_after.completion_ids == base.completion_ids and base_after.weights_version == 0
        assert lora_after.completion_ids == new.completion_ids
        with pytest.raises(ValueError, match="carries LoRA adapters"):
            pool.update_weights("base", TINY_MODEL)
        with pytest.raises(ValueError, match="do not fit"):
            pool.update_weights("lora", {"nonsense": torch.zeros(2)})


def test_a_failed_continuation_fails_its_score_call_and_stops_the_others(fake_vllm):
    pool, engine = fake_vllm

    async def main():
        with pytest.raises(BackendError, match="illegal memory access"):
            await pool.score("tiny", "Say", [" yes", " no" + " no" * 60])
        return engine.running, await pool.score("tiny", "Say", [" yes"])

    running, after = run(main())
    assert running == 0 and after == [0.0]  # nothing left running; the policy serves on
