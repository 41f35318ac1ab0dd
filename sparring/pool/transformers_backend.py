"""The ``transformers`` backend: batched generation with exact per-token logprobs.

One decoding loop serves a whole batch of requests for one model: prompts are left-padded,
position ids come from the attention mask (so a prompt's positions do not depend on its
neighbours' lengths), and each row keeps its own sampling parameters, seed, stop strings and
token budget. Logits are read at every step, so the logprobs are exactly those of the
distribution each token was drawn from. Runs on CPU or CUDA.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

from sparring.errors import InvalidRequestError
from sparring.pool.fast_decode import FastDecoder
from sparring.pool.types import Generation, GenerationRequest
from sparring.runs import resolve_model


@dataclass
class LoadedModel:
    name: str
    model: Any
    tokenizer: Any
    device: torch.device
    lock: Any = field(default_factory=threading.RLock, repr=False)
    """Held while the model runs: batches and scoring calls take turns (peft's adapter
    selection is per call, not per thread), and weights never change within one call."""
    use_fast_decoder: bool = True
    """Decode Llama-family models with :class:`~sparring.pool.fast_decode.FastDecoder` (off:
    always through the model's own forward)."""

    @property
    def has_adapters(self) -> bool:
        return hasattr(self.model, "peft_config")

    @cached_property
    def cache_arg(self) -> str:
        """The forward() argument for the KV cache (``cache`` since transformers 5.2x)."""
        import inspect

        model = self.model.get_base_model() if self.has_adapters else self.model
        return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 1 << 30))

    @property
    def fast_decoding(self) -> bool:
        """Whether batches without adapters decode through :class:`FastDecoder`."""
        return self.use_fast_decoder and FastDecoder.supports(self.model)


def load_model(name: str, model: str | Path | Any, tokenizer: Any = None, device: str = "cpu",
               dtype: torch.dtype | None = None) -> LoadedModel:
    """Load a Hugging Face causal LM: ``tiny``, a hub id, a local model directory (or a
    checkpoint or run holding one: see :func:`~sparring.runs.resolve_model`), or a model
    object with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(model, (str, Path)):
        found = resolve_model(model)
        if found.is_adapter:
            raise InvalidRequestError(f"policy {name!r}: {model} is a LoRA adapter; serve its base model and "
                                      "add the adapter with add_adapter (build_pool and serve_model do both)")
        if tokenizer is None:
            tokenizer = found.load(AutoTokenizer)
        model = found.load(AutoModelForCausalLM, dtype=dtype or torch.float32)
    elif tokenizer is None:
        raise InvalidRequestError(f"policy {name!r}: a model object needs its tokenizer (tokenizer=...)")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    target = torch.device(device)
    model.to(target).eval()
    return LoadedModel(name, model, tokenizer, target)


def render_prompt(loaded: LoadedModel, request: GenerationRequest) -> str:
    return render_request(loaded.tokenizer, request)


def render_request(tokenizer: Any, request: GenerationRequest) -> str:
    """The text the model continues: a raw prompt as is, or chat messages rendered with the
    tokenizer's chat template (generation prompt added); then the request's prefill. Every
    backend renders through here, so a prompt means the same tokens on each of them."""
    if isinstance(request.prompt, str):
        return request.prompt + request.prefill
    if getattr(tokenizer, "chat_template", None) is None:
        raise InvalidRequestError(
            f"policy {request.policy!r}: chat messages need a tokenizer with a chat template; "
            "send a plain-text prompt instead"
        )
    try:
        text = tokenizer.apply_chat_template(list(request.prompt), add_generation_prompt=True, tokenize=False)
    except Exception as error:  # the template refuses these messages (a system role, roles that do not alternate)
        raise InvalidRequestError(f"policy {request.policy!r}: its chat template cannot render these messages: "
                                  f"{type(error).__name__}: {error}") from error
    return text + request.prefill


class _Row:
    """Decoding state of one request in a batch."""

    def __init__(self, request: GenerationRequest, prompt_ids: list[int], seed: int):
        self.request = request
        self.prompt_ids = prompt_ids
        self.rng = random.Random(seed)  # one uniform draw per sampled token
        self.ids: list[int] = []
        self.logprobs: list[float] = []
        self.finish: str | None = None
        self.text = ""


def request_prompt_ids(loaded: LoadedModel, request: GenerationRequest) -> list[int]:
    """The prompt's token ids, or InvalidRequestError when the request cannot be served (an
    empty prompt, or one that leaves no room for ``max_new_tokens`` in the context)."""
    prompt_ids = loaded.tokenizer(render_prompt(loaded, request), add_special_tokens=False)["input_ids"]
    return servable_prompt(prompt_ids, request, loaded.context_length)


def servable_prompt(prompt_ids: list[int], request: GenerationRequest, context_length: int) -> list[int]:
    """``prompt_ids``, or InvalidRequestError when the request cannot be served in a context of
    ``context_length`` tokens (every backend checks its requests with this)."""
    if not prompt_ids:
        raise InvalidRequestError(f"empty prompt for policy {request.policy!r}")
    if len(prompt_ids) + request.sampling.max_new_tokens > context_length:
        raise InvalidRequestError(
            f"prompt of {len(prompt_ids)} tokens + max_new_tokens={request.sampling.max_new_tokens} "
            f"exceeds the context of {context_length} tokens of policy {request.policy!r}; "
            "shorten the prompt or lower max_new_tokens"
        )
    return prompt_ids


def generate_batch(loaded: LoadedModel, requests: list[GenerationRequest], default_generator: torch.Generator,
                   adapters: list[str | None] | None = None, versions: list[int] | None = None) -> list[Generation]:
    """Serve one batch of requests for one model. ``adapters`` names each row's LoRA adapter
    (``None``: the base model) when the model carries adapters. Raises InvalidRequestError
    when a request is bad (see :func:`request_prompt_ids`); the caller serves the others
    without it (the pool does)."""
    with loaded.lock, torch.no_grad():
        return _generate_batch(loaded, requests, default_generator, adapters, versions)


def _generate_batch(loaded: LoadedModel, requests: list[GenerationRequest], default_generator: torch.Generator,
                    adapters: list[str | None] | None, versions: list[int] | None) -> list[Generation]:
    tok = loaded.tokenizer
    rows = []
    for request in requests:
        prompt_ids = request_prompt_ids(loaded, request)
        seed = request.sampling.seed
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,), generator=default_generator))
        rows.append(_Row(request, prompt_ids, seed))

    device = loaded.device
    width = max(len(r.prompt_ids) for r in rows)
    pad = tok.pad_token_id
    step_ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in rows], device=device)
    eos = _eos_ids(loaded)
    active = list(range(len(rows)))  # rows still decoding, in batch order
    new_tokens = max(r.request.sampling.max_new_tokens for r in rows)
    next_position = mask.sum(-1)
    if loaded.fast_decoding and adapters is None:
        decoder = FastDecoder.build(loaded.model, new_tokens)
        logits = decoder.prefill([r.prompt_ids for r in rows])
    else:
        decoder = _ModelStep(loaded, width + new_tokens, adapters)
        logits = decoder.prefill(step_ids, mask, (mask.cumsum(-1) - 1).clamp(min=0))
    sampler = _Sampler(rows, device)
    while True:
        tokens, logprobs = sampler.sample(logits.float())
        keep = []
        for slot, (i, token, logprob) in enumerate(zip(active, tokens, logprobs)):
            row = rows[i]
            if row.finish is not None:  # finished earlier, still in the batch as padding
                continue
            row.ids.append(token)
            row.logprobs.append(logprob)
            _check_finish(row, token, eos, tok)
            if row.finish is None:
                keep.append(slot)
        if not keep:
            break
        finished = len(active) - len(keep)
        if finished >= max(2, len(active) // 4) and decoder.can_select:
            # Drop finished rows from the batch (and the KV cache) rather than decode padding;
            # in bulk, since each drop copies the whole cache.
            index = torch.tensor(keep, device=device)
            decoder.select(index)
            sampler.select(keep)
            next_position = next_position[index]
            active = [active[slot] for slot in keep]
            step = [rows[i].ids[-1] for i in active]
            alive = torch.ones(len(active), dtype=torch.long, device=device)
        else:
            step = [rows[i].ids[-1] if rows[i].finish is None else pad for i in active]
            alive = torch.tensor([int(rows[i].finish is None) for i in active], device=device)
        logits = decoder.step(torch.tensor(step, device=device).unsqueeze(-1), alive, next_position.unsqueeze(-1))
        next_position = next_position + alive

    return [
        Generation(
            text=row.text, prompt_ids=tuple(row.prompt_ids), completion_ids=tuple(row.ids),
            logprobs=tuple(row.logprobs), finish_reason=row.finish, policy=row.request.policy,
            weights_version=version,
        )
        for row, version in zip(rows, versions or [0] * len(rows))
    ]


class _ModelStep:
    """Decoding through the model's own forward: any architecture, LoRA adapters (each row
    names its own), a preallocated KV cache where the model allows one."""

    def __init__(self, loaded: LoadedModel, capacity: int, adapters: list[str | None] | None):
        self.loaded = loaded
        self.cache = preallocated_cache(loaded, capacity)
        self.adapters = [a or "__base__" for a in adapters] if adapters is not None else None
        self.mask: torch.Tensor | None = None

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        self.mask = mask
        return self._forward(ids, positions)

    def step(self, ids: torch.Tensor, alive: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, alive.unsqueeze(-1)], dim=-1)
        return self._forward(ids, positions)

    @property
    def can_select(self) -> bool:
        return hasattr(self.cache, "batch_select_indices")

    def select(self, index: torch.Tensor) -> None:
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        if self.adapters is not None:
            self.adapters = [self.adapters[i] for i in index.tolist()]

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        loaded = self.loaded
        extra = {"adapter_names": self.adapters} if self.adapters is not None else {}
        out = loaded.model(input_ids=ids, attention_mask=self.mask, position_ids=positions, use_cache=True,
                           **{loaded.cache_arg: self.cache}, **extra)
        self.cache = out[loaded.cache_arg] if loaded.cache_arg in out else out.past_key_values
        return out.logits[:, -1, :]


class PreallocatedLayer(DynamicLayer):
    """A KV-cache layer that writes into a buffer sized for the whole generation, where the
    default layer concatenates (copying the whole cache) at every step. ``keys``/``values`` are
    views of the filled part, so attention sees exactly what it would otherwise."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        shape = (*key_states.shape[:-2], self.capacity, key_states.shape[-1])
        self.key_buffer = key_states.new_empty(shape)
        self.value_buffer = value_states.new_empty((*shape[:-1], value_states.shape[-1]))

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise ValueError(f"KV cache of {self.capacity} positions is full")
        self.key_buffer[:, :, self.length:end] = key_states
        self.value_buffer[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self.keys, self.values = self.key_buffer[:, :, :self.length], self.value_buffer[:, :, :self.length]


def preallocated_cache(loaded: LoadedModel, capacity: int):
    """A cache of :class:`PreallocatedLayer` s for plain decoder models (every layer full
    attention); ``None`` (the model's default cache) for anything else."""
    config = loaded.model.config
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    if getattr(config, "sliding_window", None) or set(layer_types) != {"full_attention"}:
        return None
    layers = getattr(config, "num_hidden_layers", None)
    if not isinstance(layers, int):
        return None
    return Cache(layers=[PreallocatedLayer(capacity) for _ in range(layers)])


class _Sampler:
    """Draws one token per row of a batch, each row with its own sampling parameters, in a few
    batched ops (the per-row parameters become tensors once per batch).

    Sampled rows use inverse-CDF sampling with one uniform number from the row's own
    generator, so a seeded request draws the same tokens in any batch. The logprob is that of
    the distribution the token was drawn from (temperature, top-k and top-p applied);
    greedy rows report the untempered model distribution.
    """

    def __init__(self, rows: list[_Row], device: torch.device):
        self.rows = rows
        self.params = [r.request.sampling for r in rows]
        self.greedy = torch.tensor([p.greedy for p in self.params], device=device)
        self.all_greedy = all(p.greedy for p in self.params)
        self.any_greedy = any(p.greedy for p in self.params)
        temperatures = [1.0 if p.greedy else p.temperature for p in self.params]
        self.temperature = (None if all(t == 1.0 for t in temperatures)
                            else torch.tensor(temperatures, device=device).unsqueeze(-1))
        self.truncated = any(p.top_k or p.top_p < 1.0 for p in self.params if not p.greedy)

    def select(self, slots: list[int]) -> None:
        """Keep the rows at ``slots`` (as the batch drops its finished rows)."""
        index = torch.tensor(slots, device=self.greedy.device)
        self.rows = [self.rows[i] for i in slots]
        self.params = [self.params[i] for i in slots]
        self.greedy = self.greedy[index]
        if self.temperature is not None:
            self.temperature = self.temperature[index]

    def sample(self, logits: torch.Tensor) -> tuple[list[int], list[float]]:
        if self.all_greedy:
            tokens = logits.argmax(-1)
            return tokens.tolist(), torch.log_softmax(logits, -1).gather(1, tokens[:, None])[:, 0].tolist()
        scaled = logits if self.temperature is None else logits / self.temperature
        if self.truncated:
            scaled = _truncate(scaled, self.params)
        if self.any_greedy:
            scaled = torch.where(self.greedy.unsqueeze(-1), logits, scaled)
        logprobs = torch.log_softmax(scaled, dim=-1)
        cdf = logprobs.exp().cumsum(-1)
        uniform = torch.tensor([r.rng.random() for r in self.rows], device=logits.device, dtype=cdf.dtype)
        tokens = torch.searchsorted(cdf, (uniform * cdf[:, -1]).unsqueeze(-1)).squeeze(-1)
        tokens = tokens.clamp(max=logits.shape[-1] - 1)
        if self.any_greedy:
            tokens = torch.where(self.greedy, logits.argmax(-1), tokens)
        return tokens.tolist(), logprobs.gather(1, tokens.unsqueeze(-1)).squeeze(-1).tolist()


def _truncate(scaled: torch.Tensor, params: list) -> torch.Tensor:
    """Mask logits outside each row's top-k and top-p nucleus with -inf."""
    vocab = scaled.shape[-1]
    sorted_logits, order = torch.sort(scaled, dim=-1, descending=True)
    ks = torch.tensor([p.top_k if p.top_k and not p.greedy else vocab for p in params], device=scaled.device)
    ranks = torch.arange(vocab, device=scaled.device).unsqueeze(0)
    drop = ranks >= ks.unsqueeze(-1)
    top_p = torch.tensor([p.top_p if not p.greedy else 1.0 for p in params], device=scaled.device).unsqueeze(-1)
    probs = torch.softmax(sorted_logits.masked_fill(drop, -math.inf), dim=-1)
    # Keep the token that crosses p; a row without a nucleus (top_p = 1) keeps every token,
    # even where float rounding takes the running sum to 1 early (its samples must not depend
    # on the rows it is batched with).
    drop |= ((probs.cumsum(-1) - probs) >= top_p) & (top_p < 1.0)
    return scaled.scatter(1, order, sorted_logits.masked_fill(drop, -math.inf))


def _eos_ids(loaded: LoadedModel) -> set[int]:
    ids = set()
    for source in (loaded.tokenizer.eos_token_id, getattr(loaded.model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(source)
    return ids


def _check_finish(row: _Row, token: int, eos: set[int], tok: Any) -> None:
    params = row.request.sampling
    if token in eos:
        row.finish = "stop"
        row.text = tok.decode(row.ids[:-1], skip_special_tokens=True)
        return
    if params.stop:
        text = tok.decode(row.ids, skip_special_tokens=True)
        hits = [(text.find(s) + len(s)) for s in params.stop if s in text]
        if hits:
            row.finish = "stop"
            row.text = text[: min(hits)]
            return
    if len(row.ids) >= params.max_new_tokens:
        row.finish = "length"
        row.text = tok.decode(row.ids, skip_special_tokens=True)


def score_continuations(loaded: LoadedModel, prompt: str, continuations: list[str],
                        adapter: str | None = None) -> list[float]:
    """Log-probability of each continuation after ``prompt`` (teacher-forced, summed over its
    tokens): how a guard model's first answer token is read, or a candidate ranked."""
    tok = loaded.tokenizer
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    scores = []
    with loaded.lock:  # every continuation scored on the same weights
        for text in continuations:
            ids = _scorable(loaded, tok(prompt + text, add_special_tokens=False)["input_ids"])
            start = continuation_start(prompt_ids, ids, text)
            scores.append(float(_teacher_forced(loaded, ids, adapter, start).sum()))
    return scores


def continuation_start(prompt_ids: list[int], ids: list[int], continuation: str) -> int:
    """Where a continuation's tokens begin in ``ids`` (the tokens of prompt + continuation).
    Tokens may merge across the boundary, so it is where the two encodings part."""
    start = next((i for i, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), len(prompt_ids))
    if start >= len(ids):
        raise InvalidRequestError(f"continuation {continuation!r} adds no token after the prompt")
    if start == 0:
        raise InvalidRequestError(f"the prompt gives no token before continuation {continuation!r}, so nothing "
                                  "predicts its first token; give a non-empty prompt")
    return start


def prompt_token_logprobs(loaded: LoadedModel, text: str,
                          adapter: str | None = None) -> tuple[list[int], list[float]]:
    """The token ids of a raw ``text`` and the log-probability of each token after the first
    given those before it (teacher-forced, the model's own distribution: no temperature).
    This is what an echoed prompt reports, so that a client on the other side of HTTP can
    score continuations as :func:`score_continuations` does. The first token has nothing
    to be predicted from, so there is one logprob fewer than ids."""
    ids = _scorable(loaded, loaded.tokenizer(text, add_special_tokens=False)["input_ids"])
    return ids, _teacher_forced(loaded, ids, adapter, 1).tolist()


def _scorable(loaded: LoadedModel, ids: list[int]) -> list[int]:
    """``ids``, or InvalidRequestError when a teacher-forced pass cannot read them: none, or
    more than the model's context (its positions past it mean nothing)."""
    if not ids:
        raise InvalidRequestError(f"empty prompt for policy {loaded.name!r}; send at least one token of text")
    if len(ids) > loaded.context_length:
        raise InvalidRequestError(
            f"prompt of {len(ids)} tokens exceeds the context of {loaded.context_length} tokens of "
            f"policy {loaded.name!r}; shorten the prompt"
        )
    return ids


def _teacher_forced(loaded: LoadedModel, ids: list[int], adapter: str | None, start: int) -> torch.Tensor:
    """Log-probabilities of ``ids[start:]``, each given the ids before it, in one forward pass."""
    extra = {"adapter_names": [adapter or "__base__"]} if loaded.has_adapters else {}
    with loaded.lock, torch.no_grad():
        logits = loaded.model(input_ids=torch.tensor([ids], device=loaded.device), **extra).logits[0].float()
    logprobs = torch.log_softmax(logits[start - 1: -1], -1)
    target = torch.tensor(ids[start:], device=loaded.device)
    return logprobs.gather(1, target[:, None]).squeeze(1)


def check_state_fits(what: str, required: dict[str, torch.Tensor], allowed: set[str] | dict,
                     state: dict[str, torch.Tensor]) -> None:
    """Refuse a state dict before anything is loaded: every ``required`` key present with its
    shape, and no key outside ``allowed``."""
    missing = [k for k in required if k not in state]
    unexpected = [k for k in state if k not in allowed]
    wrong = [k for k, v in state.items() if k in required and tuple(v.shape) != tuple(required[k].shape)]
    if missing or unexpected or wrong:
        raise InvalidRequestError(
            f"weights for {what} do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shape {wrong[:5]}"
        )
