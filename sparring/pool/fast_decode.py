"""A decoding forward pass with few Python steps per token, for Llama-family models.

The transformers backend spends most of a small model's decoding step outside the arithmetic:
module calls, a causal mask rebuilt every step, a cache object that concatenates. For the
common decoder-only layout (Llama, Qwen2, Mistral without a sliding window: RMSNorm, rotary
attention with optional grouped KV heads, a gated MLP) :class:`FastDecoder` runs the same
arithmetic on the model's own parameters with a key/value buffer sized for the whole batch,
an additive padding mask kept as a tensor, and the LM head applied to the last position only.
It reads the parameters at every step, so weight updates loaded in place are served at once.

Anything else (a LoRA adapter, another architecture, a sliding window, per-head norms) has no
fast path (:meth:`FastDecoder.supports` says so) and the backend calls the model itself.
``tests/test_pool.py`` checks that both give the same logits and the same generations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

SUPPORTED = ("LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM")


@dataclass
class _Layer:
    input_norm: Any
    q: Any
    k: Any
    v: Any
    o: Any
    post_norm: Any
    gate: Any
    up: Any
    down: Any


class FastDecoder:
    """Decoding for one batch of one model (see the module docstring)."""

    @staticmethod
    def supports(model: Any) -> bool:
        """Whether ``model`` has the layout this path computes."""
        if type(model).__name__ not in SUPPORTED or hasattr(model, "peft_config"):
            return False
        config = model.config
        if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
            return False
        if set(getattr(config, "layer_types", None) or ["full_attention"]) != {"full_attention"}:
            return False
        return not hasattr(model.model.layers[0].self_attn, "q_norm")

    @classmethod
    def build(cls, model: Any, new_tokens: int) -> FastDecoder:
        """Decoding state for one batch that generates up to ``new_tokens`` per row."""
        return cls(model, new_tokens)

    def __init__(self, model: Any, new_tokens: int):
        self.capacity = new_tokens
        base = model.model
        self.model = model
        self.embed = base.embed_tokens
        self.rotary = base.rotary_emb
        self.norm = base.norm
        self.lm_head = model.lm_head
        self.layers = [_Layer(l.input_layernorm, l.self_attn.q_proj, l.self_attn.k_proj, l.self_attn.v_proj,
                              l.self_attn.o_proj, l.post_attention_layernorm, l.mlp.gate_proj, l.mlp.up_proj,
                              l.mlp.down_proj) for l in base.layers]
        attention = base.layers[0].self_attn
        self.head_dim = attention.head_dim
        self.heads = model.config.num_attention_heads
        self.kv_heads = model.config.num_key_value_heads
        self.scaling = attention.scaling
        self.act = base.layers[0].mlp.act_fn
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.length = 0
        self.bias: torch.Tensor | None = None

    # -- one batch ---------------------------------------------------------------------------
    def prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        """The prompts' forward pass; the logits of each prompt's last position.

        Prompts that begin with the same tokens (a role's instructions) share them: each such
        prefix runs once, and its keys and values are copied to every row that starts with it;
        only the rest of each prompt runs per row. A row's buffer holds its prefix (left-padded
        to the longest prefix), then the rest (left-padded to the longest rest), then what it
        generates; the additive mask hides the padding, positions count the row's own tokens."""
        device = self.embed.weight.device
        dtype = self.embed.weight.dtype
        batch = len(prompts)
        groups = shared_prefixes(prompts)
        shared = [0] * batch
        for length, members in groups:
            for row in members:
                shared[row] = length
        prefix_width = max(shared)
        rests = [p[n:] for p, n in zip(prompts, shared)]
        rest_width = max(len(r) for r in rests)
        capacity = prefix_width + rest_width + self.capacity
        shape = (batch, self.kv_heads, capacity, self.head_dim)
        # Zeros, not empty memory: the padding columns are masked, but a masked NaN left in
        # uninitialised memory would still reach the output (0 x NaN is NaN).
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in self.layers]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in self.layers]
        minimum = torch.finfo(dtype).min
        # One additive mask over the whole buffer: padding masked, each generated position
        # opened as it is written.
        self.bias = torch.full((batch, 1, 1, capacity), minimum, dtype=dtype, device=device)
        for length, members in groups:
            keys, values = self._prefix(prompts[members[0]][:length], device)
            rows = torch.tensor(members, device=device)
            first = prefix_width - length
            for layer in range(len(self.layers)):
                self.keys[layer][rows, :, first:prefix_width] = keys[layer]
                self.values[layer][rows, :, first:prefix_width] = values[layer]
            self.bias[rows, 0, 0, first:prefix_width] = 0.0
        pad = [rest_width - len(r) for r in rests]
        ids = torch.tensor([[0] * n + r for n, r in zip(pad, rests)], device=device)
        positions = torch.tensor([[0] * n + list(range(k, k + len(r))) for n, k, r in zip(pad, shared, rests)],
                                 device=device)
        real = torch.tensor([[False] * n + [True] * len(r) for n, r in zip(pad, rests)], device=device)
        self.bias[:, 0, 0, prefix_width: prefix_width + rest_width] = torch.where(real, 0.0, minimum).to(dtype)
        causal = torch.ones(rest_width, prefix_width + rest_width, dtype=torch.bool, device=device)
        causal[:, prefix_width:] = torch.ones(rest_width, rest_width, dtype=torch.bool, device=device).tril()
        prompt_bias = self.bias[:, :, :, : prefix_width + rest_width].masked_fill(~causal, minimum)
        self.length = prefix_width
        return self._forward(ids, positions, prompt_bias, self.keys, self.values)

    def _prefix(self, ids: list[int], device: torch.device) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The keys and values of one shared prefix, per layer ([kv_heads, length, head_dim])."""
        dtype = self.embed.weight.dtype
        shape = (1, self.kv_heads, len(ids), self.head_dim)
        keys = [torch.empty(shape, dtype=dtype, device=device) for _ in self.layers]
        values = [torch.empty(shape, dtype=dtype, device=device) for _ in self.layers]
        causal = torch.ones(len(ids), len(ids), dtype=torch.bool, device=device).tril()
        bias = torch.zeros(1, 1, len(ids), len(ids), dtype=dtype, device=device).masked_fill(
            ~causal, torch.finfo(dtype).min)
        length, self.length = self.length, 0
        self._forward(torch.tensor([ids], device=device), torch.arange(len(ids), device=device)[None], bias,
                      keys, values, logits=False)
        self.length = length
        return [k[0] for k in keys], [v[0] for v in values]

    def step(self, ids: torch.Tensor, alive: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One decoding step (``ids`` [B, 1]); ``alive`` [B] opens the new position for the rows
        still decoding (finished ones stay padding)."""
        minimum = torch.finfo(self.bias.dtype).min
        self.bias[:, 0, 0, self.length] = torch.where(alive.bool(), 0.0, minimum).to(self.bias.dtype)
        return self._forward(ids, positions, self.bias[:, :, :, : self.length + 1], self.keys, self.values)

    can_select = True

    def select(self, index: torch.Tensor) -> None:
        """Keep only the rows ``index`` (finished rows leave the batch)."""
        self.keys = [k[index] for k in self.keys]
        self.values = [v[index] for v in self.values]
        self.bias = self.bias[index]

    @torch.no_grad()
    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, bias: torch.Tensor, all_keys: list[torch.Tensor],
                 all_values: list[torch.Tensor], logits: bool = True) -> torch.Tensor | None:
        """Run ``ids`` [B, S] at ``positions``, writing their keys and values at the buffers'
        next ``S`` columns and attending over everything written so far through ``bias``."""
        batch, width = ids.shape
        start, end = self.length, self.length + width
        hidden = self.embed(ids)
        cos, sin = self.rotary(hidden, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        gqa = self.heads != self.kv_heads
        for layer, keys, values in zip(self.layers, all_keys, all_values):
            h = _rms_norm(hidden, layer.input_norm)
            q = _linear(h, layer.q).view(batch, width, self.heads, self.head_dim).transpose(1, 2)
            k = _linear(h, layer.k).view(batch, width, self.kv_heads, self.head_dim).transpose(1, 2)
            keys[:, :, start:end] = k * cos + _rotate_half(k) * sin
            values[:, :, start:end] = _linear(h, layer.v).view(batch, width, self.kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            attended = F.scaled_dot_product_attention(q, keys[:, :, :end], values[:, :, :end], attn_mask=bias,
                                                      scale=self.scaling, enable_gqa=gqa)
            hidden = hidden + _linear(attended.transpose(1, 2).reshape(batch, width, -1), layer.o)
            h = _rms_norm(hidden, layer.post_norm)
            hidden = hidden + _linear(self.act(_linear(h, layer.gate)) * _linear(h, layer.up), layer.down)
        self.length = end
        return _linear(_rms_norm(hidden[:, -1], self.norm), self.lm_head) if logits else None


MIN_SHARED = 16
"""Tokens two prompts must share before their common beginning runs once for both."""


def shared_prefixes(prompts: list[list[int]], minimum: int = MIN_SHARED) -> list[tuple[int, list[int]]]:
    """Groups of rows whose prompts begin alike, as ``(shared length, rows)``, chosen to save
    the most computation: prompts are sorted, and a dynamic programme cuts the sorted order
    into runs, each sharing its common beginning (at least ``minimum`` tokens, and always one
    token short of a member's end, so that every row keeps a token of its own to predict
    from); a run of one row shares nothing."""
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])
    n = len(order)
    # best[j]: the most tokens saved by grouping order[:j]; cut[j]: where its last run starts.
    best, cut = [0] * (n + 1), [0] * (n + 1)
    for j in range(1, n + 1):
        best[j], cut[j] = best[j - 1], j - 1
        length = len(prompts[order[j - 1]]) - 1
        for i in range(j - 2, -1, -1):  # the run order[i:j]
            length = min(length, _common(prompts[order[i]], prompts[order[i + 1]]), len(prompts[order[i]]) - 1)
            if length < minimum:
                break
            saved = best[i] + (j - i - 1) * length
            if saved > best[j]:
                best[j], cut[j] = saved, i
    groups, j = [], n
    while j > 0:
        i = cut[j]
        if j - i > 1:
            length = min(min(len(prompts[r]) - 1 for r in order[i:j]),
                         min(_common(prompts[order[k]], prompts[order[k + 1]]) for k in range(i, j - 1)))
            groups.append((length, sorted(order[i:j])))
        j = i
    return groups[::-1]


def _common(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _linear(x: torch.Tensor, module: Any) -> torch.Tensor:
    """``module(x)`` for an ``nn.Linear``, without the module call (its parameters as they are now)."""
    return F.linear(x, module.weight, module.bias)


def _rms_norm(x: torch.Tensor, module: Any) -> torch.Tensor:
    """transformers' RMSNorm, computed in float32 as the model's own module does."""
    dtype = x.dtype
    y = x.to(torch.float32)
    y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + module.variance_epsilon)
    return module.weight * y.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
