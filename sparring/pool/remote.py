"""The pool's contract over HTTP: :class:`RemotePool` sends each :class:`GenerationRequest` to
an OpenAI-compatible server (ours, ``sparring.pool.server``, or ``vllm serve``) and returns a
:class:`Generation`, so games run unchanged against a pool in another process or machine.

Mapping: chat prompts go to ``/v1/chat/completions`` and text prompts to ``/v1/completions``
(with the prefill appended to the text, tokenized as it is: ``add_special_tokens=false``, no
BOS, as in-process). A chat prefill goes as a final assistant message that the server
continues (``continue_final_message``, which vLLM and ours read), or, with
``chat_prefill="extension"``, in the ``prefill`` field only our server reads. Every sampling
setting is sent, neutral ones included, so that vLLM does not fill them from the model's
``generation_config.json``. Every request asks for the sampled tokens' logprobs, the token ids
(``return_token_ids``, vLLM >= 0.10.2 and ours) and the stop string in the text
(``include_stop_str_in_output``, as the in-process pool returns it). A server that sends no
token ids yields ``prompt_ids == completion_ids == ()``; one that sends no logprobs yields
``logprobs == ()``; ``weights_version`` is 0 unless the server is ours. vLLM reports logprobs of the raw model distribution unless started with
``--logprobs-mode processed_logprobs``; ours reports those of the sampling distribution.

Scoring (:meth:`RemotePool.score`, for LM judges that read logprobs) sends each prompt +
continuation to ``/v1/completions`` with ``echo=true, logprobs=0, max_tokens=0`` (OpenAI's
legacy way, which ours and vLLM serve) and sums the echoed logprobs of the continuation's
tokens, with ``add_special_tokens=false`` so that vLLM tokenizes the raw text as the
in-process pool does (no BOS).

Failures: connection errors, 5xx and 429 are retried with exponential backoff (``retries``
times); other 4xx raise :class:`InvalidRequestError` with the server's message at once;
running out of retries raises :class:`BackendError`, and so does a request that gets no
answer within ``timeout_s`` (not retried: a server too slow once is likely slow again).
"""

from __future__ import annotations

import asyncio
import json
import random
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp

from sparring.errors import BackendError, InvalidRequestError
from sparring.pool.types import Generation, GenerationRequest, PolicyInfo
from sparring.sync import run_sync

T = TypeVar("T")
CHAT_PREFILL_MODES = ("extension", "continue_final_message")


class Retryable(Exception):
    """A failure worth another attempt; ``delay_s`` is the server's Retry-After, if any."""

    def __init__(self, message: str, delay_s: float | None = None):
        super().__init__(message)
        self.delay_s = delay_s


async def retry(attempt: Callable[[], Awaitable[T]], *, retries: int, backoff_s: float,
                max_backoff_s: float, what: str) -> T:
    """Run ``attempt`` until it succeeds, retrying on :class:`Retryable` up to ``retries``
    times with exponential backoff (jittered, so many clients do not retry in lockstep).
    Any other exception passes straight through."""
    for n in range(retries + 1):
        try:
            return await attempt()
        except Retryable as error:
            last = error
            if n == retries:
                break
            delay = min(backoff_s * 2 ** n, max_backoff_s) * (0.5 + random.random() / 2)
            await asyncio.sleep(max(delay, min(error.delay_s or 0.0, max_backoff_s)))
    raise BackendError(f"{what}: gave up after {retries + 1} attempts; last error: {last}") from last


def _server_message(text: str) -> str:
    """The error message in OpenAI's, vLLM's or FastAPI's error shape, else the raw text."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:500] or "(empty body)"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])
    return text[:500]


class RemotePool:
    """A client with the pool's contract for an OpenAI-compatible server at ``base_url``
    (``http://host:port`` or ``http://host:port/v1``).

    ``timeout_s`` bounds each HTTP attempt (override per call: ``generate(r, timeout_s=...)``);
    ``retries`` extra attempts follow connection errors, 5xx and 429, waiting ``backoff_s``,
    then twice as long each time, at most ``max_backoff_s``. Safe to use from several
    ``asyncio.run`` calls in turn: each event loop gets its own HTTP session, closed when that
    loop shuts down. Call ``await aclose()`` when done with it inside a loop you keep running.
    """

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout_s: float = 300.0,
                 retries: int = 3, backoff_s: float = 0.5, max_backoff_s: float = 10.0,
                 chat_prefill: Literal["extension", "continue_final_message"] = "continue_final_message"):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InvalidRequestError(f"base_url={base_url!r} must start with http:// or https://")
        if not (isinstance(timeout_s, int | float) and timeout_s > 0):
            raise InvalidRequestError(f"timeout_s={timeout_s!r} must be a number of seconds > 0")
        if not (isinstance(retries, int) and retries >= 0):
            raise InvalidRequestError(f"retries={retries!r} must be an integer >= 0 (0: no retries)")
        if backoff_s < 0 or max_backoff_s < 0:
            raise InvalidRequestError(f"backoff_s={backoff_s!r} and max_backoff_s={max_backoff_s!r} must be >= 0")
        if chat_prefill not in CHAT_PREFILL_MODES:
            raise InvalidRequestError(f"chat_prefill={chat_prefill!r} must be one of {CHAT_PREFILL_MODES}")
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.timeout_s, self.retries = float(timeout_s), retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.chat_prefill = chat_prefill
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._closers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._policies: list[str] | None = None

    # -- the pool's contract -------------------------------------------------------------------
    async def generate(self, request: GenerationRequest, *, timeout_s: float | None = None) -> Generation:
        chat = not isinstance(request.prompt, str)
        path, payload = ("/chat/completions" if chat else "/completions"), self._payload(request)
        body = await self._call("POST", path, payload, timeout_s)
        try:
            return self._generation(request, body, chat)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
            raise self._unexpected(path, body, error) from None

    async def score(self, policy: str, prompt: str, continuations: list[str], *,
                    timeout_s: float | None = None) -> list[float]:
        """Log-probabilities of ``continuations`` after a raw-text ``prompt`` under ``policy``,
        summed over each continuation's tokens, as :meth:`InferencePool.score` gives them (e.g.
        a guard model's "unsafe" vs "safe"). One echo request per continuation, concurrently."""
        return list(await asyncio.gather(*(self._score_one(policy, prompt, text, timeout_s)
                                           for text in continuations)))

    async def _echo(self, policy: str, text: str, timeout_s: float | None,
                    token_ids: bool = False) -> tuple[dict[str, Any], list[int], list]:
        """The server's echo of ``text`` (its reply, each token's end offset, and the tokens'
        logprobs: None for the first, which nothing predicts)."""
        payload = {"model": policy, "prompt": text, "echo": True, "logprobs": 0, "max_tokens": 0,
                   "temperature": 0, "add_special_tokens": False}
        if token_ids:
            payload["return_token_ids"] = True
        body = await self._call("POST", "/completions", payload, timeout_s)
        try:
            echoed = body["choices"][0]["logprobs"]
            ends = [offset + len(token)
                    for offset, token in zip(echoed["text_offset"], echoed["tokens"], strict=True)]
            values = [None, *map(float, echoed["token_logprobs"][1:])]
            if len(echoed["token_logprobs"]) != len(ends):
                raise ValueError(f"{len(echoed['token_logprobs'])} token_logprobs for {len(ends)} tokens")
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
            raise self._unexpected("/completions", body, error) from None
        return body, ends, values

    async def prompt_logprobs(self, policy: str, text: str, *,
                              timeout_s: float | None = None) -> tuple[list[int], list[float]]:
        """The token ids of ``text`` and each token's logprob after the first, as the server
        echoes them (its ids need ``return_token_ids``: ours and vLLM's send them)."""
        body, _, values = await self._echo(policy, text, timeout_s, token_ids=True)
        ids = list(body["choices"][0].get("prompt_token_ids") or body.get("prompt_token_ids") or [])
        if len(ids) != len(values):
            raise BackendError(f"{self.base_url}: the echo of a prompt sent {len(ids)} token ids for "
                               f"{len(values)} tokens; the server must support return_token_ids")
        return ids, values[1:]

    def info(self, policy: str) -> PolicyInfo:
        """Context length and weights version as the server's ``/v1/models`` reports them."""
        models = {m["id"]: m for m in run_sync(self._call("GET", "/models")).get("data", [])}
        if policy not in models:
            raise InvalidRequestError(f"unknown policy {policy!r}; {self.base_url} serves {sorted(models)}")
        entry = models[policy]
        return PolicyInfo(policy, int(entry.get("max_model_len") or 0), int(entry.get("weights_version") or 0))

    def tokenizer(self, policy: str) -> Any:
        raise InvalidRequestError(f"{self!r} has no tokenizer: the server at {self.base_url} tokenizes; load the "
                                  "model's tokenizer with transformers.AutoTokenizer where you need one")

    async def _score_one(self, policy: str, prompt: str, continuation: str, timeout_s: float | None) -> float:
        _, ends, values = await self._echo(policy, prompt + continuation, timeout_s)
        # The continuation's tokens are those that end inside it. A token that straddles the
        # boundary (the prompt's last characters merged with the continuation's first) counts
        # as the continuation's, as in InferencePool.score, which scores from where the
        # tokenizations of prompt and prompt + continuation part; the two differ only for a
        # tokenizer that re-splits the prompt further back than that token. The boundary is
        # measured from the end of the echoed tokens, so a server whose tokens carry a prefix
        # the prompt lacks (a BOS) or decode the prompt a little differently (vLLM decodes
        # them; ours cuts them from the text) still cuts in the right place.
        boundary = (ends[-1] if ends else 0) - len(continuation)
        first = next((i for i, end in enumerate(ends) if end > boundary), len(ends))
        if first == len(ends):
            raise InvalidRequestError(f"continuation {continuation!r} adds no token after the prompt")
        if first == 0:
            raise InvalidRequestError(f"prompt {prompt!r} gives no token before continuation {continuation!r}, "
                                      "so nothing predicts its first token; give a non-empty prompt")
        return sum(values[first:])

    @property
    def policies(self) -> list[str]:
        """The server's models (fetched once; blocking)."""
        if self._policies is None:
            self._policies = run_sync(self.list_policies())
        return list(self._policies)

    async def list_policies(self) -> list[str]:
        body = await self._call("GET", "/models")
        try:
            self._policies = [str(model["id"]) for model in body.get("data") or []]
        except (KeyError, TypeError) as error:
            raise self._unexpected("/models", body, error, "GET") from None
        return list(self._policies)

    def update_weights(self, policy: str, checkpoint_path: str | Path) -> int:
        """Load a checkpoint (a path on the server's machine) into ``policy``; returns the
        weights version that the server's next requests use. Needs a sparring server."""
        if not isinstance(checkpoint_path, (str, Path)):
            raise InvalidRequestError(f"{self!r} takes weights as a checkpoint path on the server's machine, not a "
                                      f"{type(checkpoint_path).__name__}: save them as safetensors first")
        return run_sync(self.aupdate_weights(policy, checkpoint_path))

    async def aupdate_weights(self, policy: str, checkpoint_path: str | Path) -> int:
        payload = {"policy": policy, "checkpoint": str(checkpoint_path)}
        try:
            body = await self._call("POST", "/weights", payload)
        except InvalidRequestError as error:
            if getattr(error, "status", None) in (404, 405):
                raise InvalidRequestError(
                    f"{self.base_url} has no /v1/weights route: weight updates need a sparring server "
                    "(sparring.pool.server); for vLLM use its own weight-loading API") from None
            raise
        try:
            return int(body["version"])
        except (KeyError, TypeError, ValueError) as error:
            raise self._unexpected("/weights", body, error) from None

    async def aclose(self) -> None:
        """Close this event loop's HTTP session (others close with their loops)."""
        loop = asyncio.get_running_loop()
        closer = self._closers.pop(loop, None)
        self._sessions.pop(loop, None)
        if closer is not None:
            _OPEN_SESSIONS.get(loop, set()).discard(closer)
            await closer.aclose()
        self._forget_closed_loops()

    # -- requests ------------------------------------------------------------------------------
    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        s = request.sampling
        # Every sampling field is sent, at its neutral value too (top_k -1: none, in every vLLM
        # version's spelling): vLLM fills a missing one from
        # the model's generation_config.json (a top_k or repetition_penalty of its own), and
        # the logprobs would no longer be those of the distribution asked for.
        payload: dict[str, Any] = {
            "model": request.policy, "max_tokens": s.max_new_tokens, "temperature": s.temperature,
            "top_p": s.top_p, "top_k": s.top_k or -1, "min_p": 0.0, "repetition_penalty": 1.0, "n": 1,
            "return_token_ids": True, "include_stop_str_in_output": True,
        }
        if s.stop:
            payload["stop"] = list(s.stop)
        if s.seed is not None:
            payload["seed"] = s.seed
        if isinstance(request.prompt, str):
            payload.update(prompt=request.prompt + request.prefill, logprobs=0, add_special_tokens=False)
            return payload
        messages = [dict(m) for m in request.prompt]
        payload["logprobs"] = True
        if request.prefill and self.chat_prefill == "extension":
            payload["prefill"] = request.prefill
        elif request.prefill:
            messages.append({"role": "assistant", "content": request.prefill})
            payload.update(add_generation_prompt=False, continue_final_message=True)
        payload["messages"] = messages
        return payload

    def _unexpected(self, path: str, body: Any, error: Exception, method: str = "POST") -> BackendError:
        return BackendError(f"{method} {self.base_url}{path}: unexpected reply ({type(error).__name__}: "
                            f"{error}); it starts {json.dumps(body)[:300]}")

    @staticmethod
    def _generation(request: GenerationRequest, body: dict[str, Any], chat: bool) -> Generation:
        choice = body["choices"][0]
        logprobs = choice.get("logprobs") or {}
        if chat:
            text = choice["message"].get("content") or ""
            values = [entry["logprob"] for entry in logprobs.get("content") or []]
        else:
            text = choice["text"]
            values = list(logprobs.get("token_logprobs") or [])
        finish = choice.get("finish_reason")
        return Generation(
            text=text,
            prompt_ids=tuple(choice.get("prompt_token_ids") or body.get("prompt_token_ids") or ()),
            completion_ids=tuple(choice.get("token_ids") or ()),
            logprobs=tuple(float(v) for v in values),
            finish_reason=finish if finish in ("stop", "length") else "error",
            policy=request.policy,
            weights_version=int(body.get("weights_version") or 0),
            extra={"id": body.get("id"), "usage": body.get("usage"), "server_finish_reason": finish},
        )

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None = None,
                    timeout_s: float | None = None) -> dict[str, Any]:
        url = self.base_url + path
        timeout = timeout_s or self.timeout_s

        async def attempt() -> dict[str, Any]:
            session = await self._session()
            try:
                async with session.request(method, url, json=payload,
                                           timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                    status, text = response.status, await response.text()
                    retry_after = response.headers.get("Retry-After", "")
            except TimeoutError:  # before ClientError: aiohttp's timeouts are both
                raise BackendError(f"{method} {url}: no answer within timeout_s={timeout:g} s; raise "
                                   "timeout_s for long generations or check the server's load") from None
            except aiohttp.ClientError as error:
                raise Retryable(f"cannot reach {url}: {type(error).__name__}: {error}") from error
            if status == 429 or status >= 500:
                delay = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None
                raise Retryable(f"HTTP {status} from {url}: {_server_message(text)}", delay)
            if status >= 400:
                error = InvalidRequestError(f"HTTP {status} from {url}: {_server_message(text)}")
                error.status = status
                raise error
            try:
                body = json.loads(text)
            except ValueError:
                raise BackendError(f"{method} {url}: the reply is not JSON: {text[:300]!r}") from None
            if not isinstance(body, dict):
                raise BackendError(f"{method} {url}: the reply is JSON but not an object: {text[:300]!r}")
            return body

        return await retry(attempt, retries=self.retries, backoff_s=self.backoff_s,
                           max_backoff_s=self.max_backoff_s, what=f"{method} {url}")

    # -- one HTTP session per event loop -------------------------------------------------------
    async def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is not None and not session.closed:
            return session
        self._forget_closed_loops()
        session = aiohttp.ClientSession(headers=self._headers)
        self._sessions[loop] = session
        # The loop keeps the closer (and so the session) alive even if this pool is dropped
        # first, as a pool used from synchronous code on a long-lived loop is.
        closer = _close_with_loop(session)
        self._closers[loop] = closer
        for ended in [ended for ended in _OPEN_SESSIONS if ended.is_closed()]:
            del _OPEN_SESSIONS[ended]
        _OPEN_SESSIONS.setdefault(loop, set()).add(closer)
        await anext(closer)
        return session

    def _forget_closed_loops(self) -> None:
        """Drop sessions whose loop ended without closing them (a loop closed by hand)."""
        for loop in [loop for loop in self._sessions if loop.is_closed()]:
            self._sessions.pop(loop).detach()  # nothing can be awaited on a closed loop
            self._closers.pop(loop, None)

    def __repr__(self) -> str:
        return f"RemotePool({self.base_url!r}, retries={self.retries}, timeout_s={self.timeout_s:g})"


_OPEN_SESSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[AsyncGenerator[None, None]]] = (
    weakref.WeakKeyDictionary())
"""Each loop's session closers, kept until the loop shuts down."""


async def _close_with_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Closes ``session`` when finalised: an async generator started on a loop is finalised
    by the loop's shutdown (``asyncio.run`` calls ``shutdown_asyncgens``) while the loop still
    runs, the one moment a session never closed by its user can be closed cleanly."""
    try:
        yield
    finally:
        await session.close()
