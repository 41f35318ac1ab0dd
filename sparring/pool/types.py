"""The pool's request/response contract, shared by every backend and deployment mode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class PoolError(Exception):
    """Base class of the pool's errors."""


class InvalidRequestError(PoolError, ValueError):
    """A request the pool cannot serve (bad sampling params, unknown policy, bad prompt).
    Only that request fails; the pool keeps serving the others."""


class BackendError(PoolError):
    """The backend failed while serving a request (a crashed worker, a server error)."""


class PoolClosedError(PoolError):
    """The pool was closed before the request was served."""


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


@runtime_checkable
class Pool(Protocol):
    """What every deployment of the pool offers (``InferencePool``, ``RayPool``,
    ``RemotePool``): policies and LLM judges depend on this, not on a backend."""

    @property
    def policies(self) -> list[str]: ...

    async def generate(self, request: GenerationRequest) -> Generation: ...

    def update_weights(self, policy: str, weights: Any) -> Any: ...
