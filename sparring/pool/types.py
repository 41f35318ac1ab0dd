"""The pool's request/response contract, shared by every backend and deployment mode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sparring.errors import BackendError, InvalidRequestError, PoolClosedError, PoolError

__all__ = [
    "BackendError",
    "Generation",
    "GenerationRequest",
    "InvalidRequestError",
    "PolicyInfo",
    "Pool",
    "PoolClosedError",
    "PoolError",
    "SamplingParams",
]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one completion. ``temperature=0`` is greedy decoding.

    ``top_k=0`` and ``top_p=1`` mean no truncation: the logprobs are then those of the true
    sampling distribution (the temperature-scaled softmax), which is what learners need.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    """Generation ends after the first of these strings; the text ends with it."""
    seed: int | None = None
    """Per-request seed: the same request with the same seed gives the same completion."""

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        problems = []
        if not (isinstance(self.temperature, (int, float)) and 0.0 <= self.temperature <= 100.0):
            problems.append(f"temperature={self.temperature!r} must be a number in [0, 100]")
        if not (isinstance(self.top_p, (int, float)) and 0.0 < self.top_p <= 1.0):
            problems.append(f"top_p={self.top_p!r} must lie in (0, 1]")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            problems.append(f"top_k={self.top_k!r} must be an integer >= 0 (0: no top-k)")
        if not (isinstance(self.max_new_tokens, int) and 1 <= self.max_new_tokens <= 1 << 16):
            problems.append(f"max_new_tokens={self.max_new_tokens!r} must be an integer in [1, 65536]")
        if not all(isinstance(s, str) and s for s in self.stop):
            problems.append(f"stop={self.stop!r} must be non-empty strings")
        if self.seed is not None and not isinstance(self.seed, int):
            problems.append(f"seed={self.seed!r} must be an integer or None")
        if problems:
            raise InvalidRequestError("; ".join(problems))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class GenerationRequest:
    policy: str
    """Which model/adapter serves it (a name registered with the pool)."""
    prompt: str | tuple[dict[str, str], ...]
    """Raw text, or chat messages rendered with the policy's chat template."""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    prefill: str = ""
    """Text appended after the rendered prompt that the model continues (e.g. ``<think>``)."""
    session: str | None = None
    """The game this request belongs to: a game's later turns stay on one replica."""

    def __post_init__(self) -> None:
        for name in ("policy", "prefill"):
            if not isinstance(getattr(self, name), str):
                raise InvalidRequestError(f"{name} must be a string, got {type(getattr(self, name)).__name__}")
        if self.session is not None and not isinstance(self.session, str):
            raise InvalidRequestError(f"session must be a string or None, got {type(self.session).__name__}")
        if isinstance(self.prompt, list):
            object.__setattr__(self, "prompt", tuple(self.prompt))
        if not isinstance(self.prompt, (str, tuple)):
            raise InvalidRequestError(f"prompt must be a string or chat messages, got {type(self.prompt).__name__}")
        if isinstance(self.prompt, tuple):
            for message in self.prompt:
                if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                        and isinstance(message.get("content"), str)):
                    raise InvalidRequestError(
                        f"chat message {message!r} must be a dict with string 'role' and 'content'"
                    )
        if not isinstance(self.sampling, SamplingParams):
            raise InvalidRequestError("sampling must be a SamplingParams")


@dataclass(frozen=True)
class Generation:
    """One completion, with what learners need to train on it."""

    text: str
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    """One per completion token, under the sampling distribution (temperature applied;
    greedy requests report the untempered model distribution)."""
    finish_reason: str
    """``stop`` (EOS or a stop string), ``length`` (max_new_tokens) or ``error``."""
    policy: str = ""
    weights_version: int = 0
    """Which weights produced it (bumped by every weight update of the policy)."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class PolicyInfo:
    """What a pool reports about one policy it serves."""

    name: str
    context_length: int
    """Most tokens of prompt plus completion."""
    weights_version: int
    """The version its next requests run on (bumped by every weight update)."""


@runtime_checkable
class Pool(Protocol):
    """What every deployment of the pool offers (:class:`~sparring.pool.InferencePool`,
    :class:`~sparring.pool.ray_pool.RayPool`, :class:`~sparring.pool.vllm_pool.VLLMPool`,
    :class:`~sparring.pool.RemotePool`): policies, LM judges, trainers and the HTTP server
    depend on this, never on a backend."""

    @property
    def policies(self) -> list[str]:
        """The policies it serves."""

    async def generate(self, request: GenerationRequest) -> Generation:
        """One completion of ``request``."""

    async def score(self, policy: str, prompt: str, continuations: list[str]) -> list[float]:
        """Log-probability of each continuation after a raw-text ``prompt`` under ``policy``'s
        model distribution (teacher-forced, summed over the continuation's tokens)."""

    async def prompt_logprobs(self, policy: str, text: str) -> tuple[list[int], list[float]]:
        """The token ids of a raw ``text`` and the logprob of each token after the first given
        those before it (one fewer than ids), under ``policy``'s model distribution."""

    def info(self, policy: str) -> PolicyInfo:
        """Context length and current weights version of ``policy``."""

    def tokenizer(self, policy: str) -> Any:
        """The Hugging Face tokenizer that renders and splits ``policy``'s text."""

    def update_weights(self, policy: str, weights: Any) -> int:
        """New weights for ``policy`` (a state dict or a safetensors checkpoint path); returns
        the weights version that generations from them carry."""

    async def aclose(self) -> None:
        """Stop serving; requests still waiting fail with PoolClosedError."""
