"""The pool over vLLM: :class:`VLLMPool` keeps the contract of
:class:`~sparring.pool.pool.InferencePool` (the same requests, generations and errors) and
serves it with vLLM's V1 async engine on a CUDA GPU: continuous batching, a paged KV cache with
prefix caching, and multi-LoRA, so a league of adapters shares one copy of its base model.

vLLM is an optional extra (``pip install 'sparring[vllm]'``, CUDA wheels only) imported only when
a pool is built, so this module imports anywhere::

    from sparring.pool.vllm_pool import VLLMPool

    pool = VLLMPool(PoolConfig(backend="vllm", gpu_memory_utilization=0.5))
    pool.add_policy("base", "path/to/model", enable_lora=True)
    pool.add_adapter("rival", "base", "runs/rival/adapter")

How the contract is kept:

- Prompts are rendered and tokenized by the policy's Hugging Face tokenizer exactly as in the
  transformers backend (:func:`~sparring.pool.transformers_backend.render_request`) and reach
  vLLM as token ids, so a request has the same ``prompt_ids`` on both backends.
- Engines run with ``logprobs_mode="processed_logprobs"`` and every request asks for the sampled
  token's logprob: the logprob under the distribution the token was drawn from (temperature,
  top-k and top-p applied; greedy requests get the untempered model distribution).
- Stop strings stay at the end of the text; vLLM's finish reasons map to ``stop`` and
  ``length``, anything else to ``error`` (vLLM's own reason is kept in ``extra``).
- Weight updates. A full model is reloaded in place (its workers run ``reload_weights`` from a
  staged safetensors checkpoint) once the requests in flight have finished on the old weights;
  requests that arrive meanwhile wait and run on the new ones. An adapter's new version is
  registered under a new LoRA id: requests from then on use it, those in flight finish on the
  old one, which is dropped afterwards.

- Scoring (:meth:`VLLMPool.score`, :meth:`VLLMPool.prompt_logprobs`) asks vLLM for the prompt's
  logprobs (``prompt_logprobs=0``) at temperature 1 with no truncation, where the processed
  logprobs are the model's own distribution, as the transformers backend scores.

The engines live on one event loop in a thread of the pool's own (vLLM's async engine stays
bound to the loop it first ran on), so the pool serves callers on any loop or thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import shutil
import tempfile
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from sparring.errors import BackendError, InvalidRequestError, ModelNotFoundError, PoolClosedError
from sparring.pool.config import PoolConfig
from sparring.pool.transformers_backend import (
    check_state_fits,
    continuation_start,
    render_request,
    servable_prompt,
)
from sparring.pool.types import Generation, GenerationRequest, PolicyInfo, SamplingParams
from sparring.runs import resolve_model, safetensors_files, safetensors_shapes
from sparring.sync import LoopThread

MISSING_VLLM = (
    "VLLMPool needs vLLM, which could not be imported ({error}). Install it with "
    "pip install 'sparring[vllm]'; vLLM ships CUDA wheels only, so it needs a machine with a "
    "CUDA GPU. Elsewhere use InferencePool (the transformers backend), which runs on CPU too."
)


def import_vllm() -> Any:
    """Import vLLM, or fail with how to get it."""
    try:
        import vllm
    except ImportError as error:
        raise ImportError(MISSING_VLLM.format(error=error)) from error
    return vllm


def vllm_sampling_kwargs(sampling: SamplingParams) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one of our requests."""
    return {
        "n": 1,
        "temperature": float(sampling.temperature),
        "top_p": float(sampling.top_p),
        "top_k": sampling.top_k,  # 0 means no top-k in vLLM too
        "max_tokens": sampling.max_new_tokens,
        "stop": list(sampling.stop),
        "include_stop_str_in_output": True,  # our contract: the text ends with the stop string
        "seed": sampling.seed,
        "logprobs": 0,  # only the sampled token's logprob (vLLM always includes it)
        "skip_special_tokens": True,
    }


def finish_reason(vllm_reason: str | None) -> str:
    """Our finish reason for vLLM's: ``stop`` (EOS, a stop token or string) and ``length``
    (max_tokens or the end of the context) keep their names; ``abort``, ``error``,
    ``repetition`` or none at all become ``error``."""
    return vllm_reason if vllm_reason in ("stop", "length") else "error"


def generation_from_output(output: Any, policy: str, version: int) -> Generation:
    """A :class:`Generation` from vLLM's final ``RequestOutput`` of a one-completion request."""
    completion = output.outputs[0]
    ids = tuple(int(token) for token in completion.token_ids)
    positions = completion.logprobs
    if positions is None or len(positions) != len(ids):
        got = "no" if positions is None else len(positions)
        raise BackendError(f"policy {policy!r}: vLLM returned {got} logprobs for {len(ids)} tokens")
    return Generation(
        text=completion.text, prompt_ids=tuple(output.prompt_token_ids), completion_ids=ids,
        logprobs=tuple(float(position[token].logprob) for position, token in zip(positions, ids)),
        finish_reason=finish_reason(completion.finish_reason), policy=policy, weights_version=version,
        extra={"request_id": output.request_id, "vllm_finish_reason": completion.finish_reason,
               "stop_reason": completion.stop_reason},
    )


#: What a scoring request asks of vLLM: the prompt's logprobs under the model's own
#: distribution (temperature 1, no truncation, so processed logprobs equal the raw ones).
SCORING = {"n": 1, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_tokens": 1, "prompt_logprobs": 0,
           "detokenize": False}


def prompt_logprobs_of(output: Any, ids: list[int], policy: str) -> list[float]:
    """Each prompt token's logprob after the first, from vLLM's ``prompt_logprobs``."""
    positions = output.prompt_logprobs
    if positions is None or len(positions) != len(ids):
        got = "no" if positions is None else len(positions)
        raise BackendError(f"policy {policy!r}: vLLM returned {got} prompt logprobs for {len(ids)} tokens")
    return [float(position[token].logprob) for position, token in zip(positions[1:], ids[1:])]


def meta_parameters(model: str) -> tuple[dict[str, torch.Tensor], set[str]]:
    """The parameters and state-dict keys of a Hugging Face causal LM, built on the meta device
    (no memory, no weights read): what a full weight update must match."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        built = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model))
    return dict(built.named_parameters()), set(built.state_dict())


@dataclass(eq=False)
class _Version:
    """One version of a policy's weights; for an adapter, its registration with vLLM."""

    number: int
    lora: Any = None
    """The ``vllm.lora.request.LoRARequest`` of an adapter version."""
    path: Path | None = None
    """The staged adapter directory vLLM (re)loads it from."""
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()


@dataclass(eq=False)
class _Engine:
    llm: Any
    """The ``vllm.v1.engine.async_llm.AsyncLLM``."""
    tokenizer: Any
    model: str

    @property
    def context_length(self) -> int:
        return int(self.llm.model_config.max_model_len)

    @property
    def max_lora_rank(self) -> int | None:
        lora = self.llm.vllm_config.lora_config
        return None if lora is None else int(lora.max_lora_rank)

    @cached_property
    def parameters(self) -> tuple[dict[str, torch.Tensor], set[str]]:
        return meta_parameters(self.model)


@dataclass(eq=False)
class _Served:
    """A policy: an engine, the weights version it serves, and the gate updates close."""

    engine: _Engine
    current: _Version
    adapter: bool = False
    requested: int = 0
    """The version the latest weight update will bring."""
    pending: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while no update is pending; requests wait here for the weights they must run on."""
    update_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    failure: BackendError | None = None
    checkpoint: Path | None = None
    """The staged checkpoint of the latest full update, kept until the next one replaces it:
    vLLM's workers take it as their model path."""

    def __post_init__(self) -> None:
        self.ready.set()


class VLLMPool:
    """Pool over vLLM's async engine (CUDA): one engine per model (:meth:`add_policy`), LoRA
    adapters served by their base model's engine (:meth:`add_adapter`). ``config`` gives the
    engines' defaults (``gpu_memory_utilization``, ``seed``)."""

    def __init__(self, config: PoolConfig | None = None, workdir: str | Path | None = None):
        self._vllm = import_vllm()
        from vllm.exceptions import VLLMClientError

        self.config = config or PoolConfig(backend="vllm")
        self._client_error = VLLMClientError
        self.served: dict[str, _Served] = {}
        self._closed = False
        self._lock = threading.Lock()  # hands out versions and submits updates in one order
        self._lora_ids = itertools.count(1)
        # Weights and adapters are copied here before vLLM reads them: vLLM re-reads an adapter
        # whenever it was evicted from its cache, and a trainer may overwrite its checkpoint
        # directory while the pool still needs the old contents.
        self._staging = tempfile.TemporaryDirectory(prefix="sparring-vllm-", dir=workdir)
        self._staged = itertools.count()
        self._tasks: set[asyncio.Task] = set()
        self._engines = LoopThread("sparring-vllm")

    # -- policies and weights --------------------------------------------------------------
    def add_policy(self, name: str, model: str | Path, tokenizer: str | Path | None = None,
                   **engine_kwargs: Any) -> None:
        """Serve ``name`` from a model id or local path on an engine of its own.

        ``model`` is anything :func:`~sparring.runs.resolve_model` takes. ``engine_kwargs`` go to
        ``vllm.AsyncEngineArgs`` (``dtype``, ``max_model_len``, ``gpu_memory_utilization``,
        ``enforce_eager``, ``seed``, ...); ``gpu_memory_utilization`` and ``seed`` default to
        the pool config's. To serve adapters on this
        model later pass ``enable_lora=True``, with ``max_lora_rank`` at least the adapters'
        rank; ``max_loras``, how many adapters one step may mix, defaults to 8 here. vLLM's LoRA
        kernels need a float16 or bfloat16 engine. Engines share a GPU only if each is given a
        share of its memory (``gpu_memory_utilization``).
        """
        from transformers import AutoTokenizer

        self._check_open()
        self._check_new(name)
        model = resolve_model(model).location
        engine_kwargs.setdefault("gpu_memory_utilization", self.config.gpu_memory_utilization)
        engine_kwargs.setdefault("seed", self.config.seed)
        mode = engine_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        if mode != "processed_logprobs":
            raise InvalidRequestError(f"logprobs_mode={mode!r}: the pool reports logprobs of the sampling "
                             "distribution, vLLM's 'processed_logprobs'; leave logprobs_mode unset")
        if engine_kwargs.get("enable_lora"):
            engine_kwargs.setdefault("max_loras", 8)
            if str(engine_kwargs.get("dtype", "auto")) in ("float32", "float", "torch.float32"):
                raise InvalidRequestError(f"policy {name!r}: vLLM's LoRA kernels need dtype='bfloat16' or "
                                 "'float16', not float32")
        engine_kwargs.setdefault("disable_log_stats", True)
        if tokenizer is not None:
            engine_kwargs["tokenizer"] = str(tokenizer)
        args = self._vllm.AsyncEngineArgs(model=str(model), **engine_kwargs)
        hf_tokenizer = AutoTokenizer.from_pretrained(str(tokenizer or model))
        llm = self._engines.run(self._start(args))
        self.served[name] = _Served(_Engine(llm, hf_tokenizer, str(model)), _Version(0))

    def adapter_base_kwargs(self, adapter: str | Path) -> dict[str, Any]:
        """What :meth:`add_policy` needs to start a base that can serve the saved ``adapter``
        (:func:`~sparring.pool.serve_model` asks for it): LoRA on, a rank that fits, and a
        half-precision engine (vLLM's LoRA kernels need one)."""
        config = Path(adapter) / "adapter_config.json"
        rank = json.loads(config.read_text()).get("r", 16) if config.is_file() else 16
        fitting = next((r for r in (16, 32, 64, 128, 256, 512) if r >= rank), rank)
        return {"enable_lora": True, "max_lora_rank": fitting, "dtype": "bfloat16"}

    async def _start(self, args: Any) -> Any:
        from vllm.v1.engine.async_llm import AsyncLLM

        return AsyncLLM.from_engine_args(args)  # on the pool's loop, which it binds to

    def add_adapter(self, name: str, base: str, adapter: str | Path) -> None:
        """Serve ``name`` as a saved peft LoRA adapter (its directory) on policy ``base``'s engine
        (started with ``enable_lora=True``); its requests batch with the base model's and the
        other adapters'. vLLM loads it now, so a bad adapter fails here."""
        self._check_open()
        self._check_new(name)
        served = self.served.get(base)
        if served is None or served.adapter:
            raise InvalidRequestError(f"base={base!r} must be a policy served as a full model; served: {self.policies}")
        if not isinstance(adapter, (str, Path)):
            raise InvalidRequestError(f"adapter must be a saved peft adapter directory, got {type(adapter).__name__} "
                            "(save a fresh adapter with save_pretrained first)")
        if served.engine.max_lora_rank is None:
            raise InvalidRequestError(f"policy {base!r} was started without LoRA: add_policy({base!r}, ..., enable_lora=True)")
        version = self._adapter_version(name, 0, self._stage_adapter(Path(adapter), served.engine))
        try:
            self._engines.run(served.engine.llm.add_lora(version.lora))
        except BaseException:
            shutil.rmtree(version.path, ignore_errors=True)
            raise
        self.served[name] = _Served(served.engine, version, adapter=True)

    def _adapter_version(self, name: str, number: int, path: Path) -> _Version:
        from vllm.lora.request import LoRARequest

        # vLLM caches adapters by id and compares requests by name: both new for every version.
        lora = LoRARequest(lora_name=f"{name}@{number}", lora_int_id=next(self._lora_ids), lora_path=str(path))
        return _Version(number, lora=lora, path=path)

    def _stage_adapter(self, source: Path, engine: _Engine) -> Path:
        config = source / "adapter_config.json"
        if not config.is_file():
            raise ModelNotFoundError(f"no peft adapter at {source} (adapter_config.json missing)")
        rank = json.loads(config.read_text()).get("r")
        if isinstance(rank, int) and rank > engine.max_lora_rank:
            raise InvalidRequestError(f"the adapter at {source} has rank {rank}, above max_lora_rank="
                             f"{engine.max_lora_rank} of its base's engine; start the base with a larger max_lora_rank")
        target = self._staging_dir("adapter")
        shutil.copytree(source, target, dirs_exist_ok=True)
        return target

    def _staging_dir(self, kind: str) -> Path:
        path = Path(self._staging.name) / f"{kind}-{next(self._staged)}"
        path.mkdir()
        return path

    @property
    def policies(self) -> list[str]:
        return list(self.served)

    def info(self, policy: str) -> PolicyInfo:
        served = self._served(policy)
        # The version its next requests run on: those arriving during an update wait for it.
        return PolicyInfo(policy, served.engine.context_length, served.requested)

    def tokenizer(self, policy: str) -> Any:
        return self._served(policy).engine.tokenizer

    def update_weights(self, policy: str, weights: dict[str, torch.Tensor] | str | Path) -> int:
        """New weights for ``policy``: a state dict or a safetensors checkpoint (a file or a
        directory); for an adapter policy, the adapter's (a peft state dict or a saved adapter
        directory). Returns the weights version that generations from the new weights carry.

        A full model's new weights load once the requests in flight on it have finished (on the
        old weights); requests that arrive meanwhile wait for the new ones. An adapter's new
        version serves every later request while those in flight finish on the old one. Called
        outside an event loop this returns once the new weights serve (and raises if loading
        them failed); inside one it returns at once: await :meth:`aupdate_weights` to wait."""
        version, future = self._submit_update(policy, weights)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            future.result()
        return version

    async def aupdate_weights(self, policy: str, weights: dict[str, torch.Tensor] | str | Path) -> int:
        """:meth:`update_weights`, returning once the new weights serve."""
        version, future = self._submit_update(policy, weights)
        await asyncio.wrap_future(future)
        return version

    def _submit_update(self, policy: str, weights: Any) -> tuple[int, concurrent.futures.Future]:
        self._check_open()
        served = self._served(policy)
        if not isinstance(weights, (dict, str, Path)):
            raise InvalidRequestError(f"weights must be a state dict or a checkpoint path, got {type(weights).__name__}")
        if served.adapter:
            path = self._stage_adapter_update(policy, served, weights)
        elif any(s.adapter for s in self.served.values() if s.engine is served.engine):
            raise InvalidRequestError(f"policy {policy!r} carries LoRA adapters: update the adapters, or serve the "
                             "full model under another name without adapters")
        else:
            path = self._stage_checkpoint(policy, served.engine, weights)
        with self._lock:
            served.requested += 1
            version = served.requested
            apply = self._swap_adapter if served.adapter else self._reload
            coro = self._update(served, apply(policy, served, version, path))
            return version, self._engines.submit(coro)

    def _stage_checkpoint(self, policy: str, engine: _Engine, weights: Any) -> Path:
        from safetensors.torch import save_file

        parameters, keys = engine.parameters
        if isinstance(weights, dict):
            check_state_fits(f"policy {policy!r}", parameters, keys, weights)
            target = self._staging_dir("weights")
            state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in weights.items()}
            save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
            return target
        source = Path(weights)
        files = safetensors_files(source)
        check_state_fits(f"policy {policy!r}", parameters, keys, safetensors_shapes(source))
        target = self._staging_dir("weights")
        for f in files + (sorted(source.glob("*.safetensors.index.json")) if source.is_dir() else []):
            shutil.copy2(f, target / f.name)
        return target

    def _stage_adapter_update(self, policy: str, served: _Served, weights: Any) -> Path:
        from safetensors.torch import save_file

        if not isinstance(weights, dict):
            return self._stage_adapter(Path(weights), served.engine)
        current = served.current.path / "adapter_model.safetensors"
        if not current.is_file():
            raise InvalidRequestError(f"adapter {policy!r} was saved without adapter_model.safetensors: "
                             "update it with a saved adapter directory")
        shapes = safetensors_shapes(current)
        check_state_fits(f"adapter {policy!r} (a peft adapter state dict)", shapes, shapes, weights)
        target = self._staging_dir("adapter")
        shutil.copy2(served.current.path / "adapter_config.json", target / "adapter_config.json")
        state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in weights.items()}
        save_file(state, str(target / "adapter_model.safetensors"), metadata={"format": "pt"})
        return target

    async def _update(self, served: _Served, apply: Coroutine) -> None:
        # Runs before any request submitted after update_weights returned (the loop runs
        # callbacks in order), so those requests wait at the gate for the new weights.
        task = asyncio.current_task()
        self._tasks.add(task)
        served.pending += 1
        served.ready.clear()
        try:
            async with served.update_lock:
                await apply
        finally:
            self._tasks.discard(task)
            served.pending -= 1
            if not served.pending:
                served.ready.set()

    async def _reload(self, policy: str, served: _Served, version: int, path: Path) -> None:
        llm = served.engine.llm
        try:
            while served.current.in_flight:
                await served.current.idle.wait()
            await llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path), "is_checkpoint_format": True})
            # Cached prefixes hold keys and values computed with the old weights.
            if not await llm.reset_prefix_cache():
                raise RuntimeError("vLLM could not reset its prefix cache")
        except Exception as error:  # the policy's every later request must hear of it
            shutil.rmtree(path, ignore_errors=True)
            raise self._fail(policy, served, version, error) from error
        if served.checkpoint is not None:
            shutil.rmtree(served.checkpoint, ignore_errors=True)
        served.checkpoint, served.current = path, _Version(version)

    async def _swap_adapter(self, policy: str, served: _Served, version: int, path: Path) -> None:
        new = self._adapter_version(policy, version, path)
        try:
            await served.engine.llm.add_lora(new.lora)
        except Exception as error:  # the policy's every later request must hear of it
            shutil.rmtree(path, ignore_errors=True)
            raise self._fail(policy, served, version, error) from error
        old, served.current = served.current, new
        if not old.in_flight:
            await self._retire(served.engine, old)

    def _fail(self, policy: str, served: _Served, version: int, error: Exception) -> BackendError:
        served.failure = BackendError(
            f"policy {policy!r}: loading weights version {version} failed ({type(error).__name__}: {error}); "
            "the policy serves no more requests: add it again under a new name"
        )
        return served.failure

    async def _retire(self, engine: _Engine, version: _Version) -> None:
        """Drop an adapter version nobody uses any more from vLLM and from disk."""
        await engine.llm.remove_lora(version.lora.lora_int_id)
        shutil.rmtree(version.path, ignore_errors=True)

    def _served(self, policy: str) -> _Served:
        served = self.served.get(policy)
        if served is None:
            raise InvalidRequestError(f"unknown policy {policy!r}; served: {self.policies}")
        return served

    def _check_new(self, name: str) -> None:
        if name in self.served:
            raise InvalidRequestError(f"policy {name!r} is already served by this pool")

    def _check_open(self) -> None:
        if self._closed:
            raise PoolClosedError("the pool is closed")

    # -- requests ----------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> Generation:
        self._check_open()
        served = self._served(request.policy)
        prompt_ids = self._prompt_ids(served.engine, request)
        return await self._engines.wrap(self._generate(request, prompt_ids))

    async def prompt_logprobs(self, policy: str, text: str) -> tuple[list[int], list[float]]:
        """The token ids of a raw ``text`` and each token's logprob after the first, under the
        policy's model distribution (vLLM's prompt logprobs at temperature 1)."""
        ids, logprobs = await self._prompt_logprobs(policy, [text])
        return ids[0], logprobs[0]

    async def score(self, policy: str, prompt: str, continuations: list[str]) -> list[float]:
        """Log-probabilities of ``continuations`` after a raw-text ``prompt`` (summed over each
        continuation's tokens, teacher-forced), as :meth:`InferencePool.score` gives them: all
        of them on one weights version."""
        tokenizer = self.tokenizer(policy)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids, logprobs = await self._prompt_logprobs(policy, [prompt + text for text in continuations])
        return [float(sum(lp[continuation_start(prompt_ids, i, text) - 1:]))
                for text, i, lp in zip(continuations, ids, logprobs)]

    async def _prompt_logprobs(self, policy: str, texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
        """:meth:`prompt_logprobs` of several texts, on one weights version."""
        self._check_open()
        served = self._served(policy)
        all_ids = []
        for text in texts:
            ids = served.engine.tokenizer(text, add_special_tokens=False)["input_ids"]
            if not ids:
                raise InvalidRequestError(f"empty prompt for policy {policy!r}; send at least one token of text")
            if len(ids) >= served.engine.context_length:
                raise InvalidRequestError(f"prompt of {len(ids)} tokens exceeds the context of "
                                          f"{served.engine.context_length} tokens of policy {policy!r}; shorten it")
            all_ids.append(ids)
        prompts = [{"prompt_token_ids": ids} for ids in all_ids]
        outputs, _ = await self._engines.wrap(self._tracked(self._serve(policy, served, prompts, SCORING)))
        return all_ids, [prompt_logprobs_of(output, ids, policy) for output, ids in zip(outputs, all_ids)]

    @staticmethod
    def _prompt_ids(engine: _Engine, request: GenerationRequest) -> list[int]:
        prompt_ids = engine.tokenizer(render_request(engine.tokenizer, request), add_special_tokens=False)["input_ids"]
        return servable_prompt(prompt_ids, request, engine.context_length)

    async def _generate(self, request: GenerationRequest, prompt_ids: list[int]) -> Generation:
        params = vllm_sampling_kwargs(request.sampling)
        served = self.served[request.policy]
        (output,), version = await self._tracked(self._serve(request.policy, served,
                                                             [{"prompt_token_ids": prompt_ids}], params))
        return generation_from_output(output, request.policy, version)

    async def _tracked(self, coro: Coroutine) -> Any:
        """``coro`` as a task the pool cancels when it closes."""
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            return await coro
        except asyncio.CancelledError:
            if self._closed:
                raise PoolClosedError("the pool was closed") from None
            raise
        finally:
            self._tasks.discard(task)

    async def _serve(self, policy: str, served: _Served, prompts: list[dict[str, Any]],
                     params: dict[str, Any]) -> tuple[list[Any], int]:
        """Requests on the weights the policy serves now, all on one version (an update waits
        for them): (vLLM's final outputs, version)."""
        from vllm.sampling_params import RequestOutputKind

        try:
            sampling = self._vllm.SamplingParams(**params, output_kind=RequestOutputKind.FINAL_ONLY)
        except Exception as error:
            raise InvalidRequestError(f"policy {policy!r}: {type(error).__name__}: {error}") from error
        while not served.ready.is_set():
            await served.ready.wait()
        if served.failure is not None:
            raise served.failure
        version = served.current  # no await between the gate and this count
        version.in_flight += 1
        version.idle.clear()

        async def final_output(prompt: dict[str, Any]) -> Any:
            final = None
            async for final in served.engine.llm.generate(prompt, sampling, uuid.uuid4().hex,
                                                          lora_request=version.lora):
                pass
            if final is None:
                raise BackendError(f"policy {policy!r}: vLLM finished the request without an output")
            return final

        tasks = [asyncio.ensure_future(final_output(p)) for p in prompts]
        try:
            try:
                outputs = await asyncio.gather(*tasks)
            finally:  # one failed or the call was cancelled: none runs on after the version is let go
                for task in tasks:
                    task.cancel()
                if tasks:
                    await asyncio.wait(tasks)
        except BackendError:
            raise
        except self._client_error as error:
            raise InvalidRequestError(f"policy {policy!r}: {error}") from error
        except Exception as error:  # a backend failure of any kind reaches the caller
            raise BackendError(f"policy {policy!r}: {type(error).__name__}: {error}") from error
        finally:
            version.in_flight -= 1
            if not version.in_flight:
                version.idle.set()
                if version.lora is not None and version is not served.current:
                    retire = asyncio.ensure_future(self._retire(served.engine, version))
                    self._tasks.add(retire)
                    retire.add_done_callback(self._tasks.discard)
        return list(outputs), version.number

    async def aclose(self) -> None:
        """Stop serving: requests in flight fail with PoolClosedError, the engines shut down and
        the staged weights are deleted."""
        if self._closed:
            return
        self._closed = True
        await self._engines.wrap(self._shutdown())
        await self._engines.astop()
        self._staging.cleanup()

    async def _shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for engine in {id(s.engine): s.engine for s in self.served.values()}.values():
            engine.llm.shutdown()

    def __repr__(self) -> str:
        return f"VLLMPool(policies={self.policies})"
