"""An OpenAI-compatible HTTP server over any pool (through the :class:`~sparring.pool.Pool`
protocol alone), so that games, evaluation tools and the ``openai`` client can share one
batching pool across processes.

Routes (a subset of OpenAI's API, with vLLM's extensions where they exist):

* ``POST /v1/completions``: ``prompt`` (a string), ``model`` (the policy), ``max_tokens``
  (default 64, the pool's, on both routes: OpenAI's differ between them),
  ``temperature``, ``top_p``, ``top_k`` (extension), ``stop``, ``seed``, ``logprobs=0`` (the
  sampled tokens' logprobs in OpenAI's ``tokens`` / ``token_logprobs`` / ``text_offset`` form),
  ``echo=true`` (the text starts with the prompt, and with ``logprobs=0`` so do the logprobs:
  the first prompt token's is null, the others' are teacher-forced under the model's own
  distribution, with no temperature). ``echo`` with ``max_tokens=0`` generates nothing: it
  reads a prompt's logprobs, which is how clients score continuations over HTTP. The echoed
  prompt tokens are cut from the prompt itself, so ``text_offset`` counts its characters.
* ``POST /v1/chat/completions``: ``messages``, the same parameters, ``logprobs=true``
  (``choices[0].logprobs.content``), extension ``prefill`` (text after the rendered chat prompt
  that the model continues; the reply holds only what the model wrote after it), or vLLM's
  way to the same prompt: a final assistant message with ``continue_final_message=true`` and
  ``add_generation_prompt=false``.
* Both: extension ``return_token_ids=true`` adds ``choices[0].prompt_token_ids`` and
  ``choices[0].token_ids`` (as vLLM does); extension ``include_stop_str_in_output`` (default
  false, as in OpenAI: the text ends before the stop string); every reply carries
  ``weights_version`` (extension), the version of the weights that produced it.
* ``GET /v1/models``, ``GET /health``, ``POST /v1/weights`` (``{"policy", "checkpoint"}``: load
  a safetensors file or directory into a policy; the reply holds the version it will serve).

Not supported, and refused with a 400 that says so: a field the server does not read (the
caller's bookkeeping ``user``, ``metadata``, ``store`` and ``service_tier`` aside), and, set
to anything but their neutral values, ``n > 1``, ``stream``, ``echo`` on chat,
``best_of``, ``suffix``, penalties, ``min_p``, ``min_tokens``, ``ignore_eos``,
``stop_token_ids``, ``logit_bias``, tools, JSON modes, alternatives
(``logprobs > 0`` on completions, ``top_logprobs > 0`` on chat), token-id prompts,
``add_special_tokens=true`` (vLLM's extension: prompts are tokenized as they are, with no BOS
added, as in the in-process pool; ``false`` is accepted). Logprobs are those of the sampling
distribution (temperature applied), as the pool reports them.

Errors use OpenAI's shape ``{"error": {"message", "type", "param"}}``: bad requests 400, a
wrong or missing API key 401, backend failures 500; tracebacks stay in the server's log.
The server binds 127.0.0.1 unless told otherwise; with ``api_key`` every ``/v1`` route needs
``Authorization: Bearer <key>`` (``/health`` stays open for probes). :func:`run_server` stops on
SIGINT (Ctrl-C) and SIGTERM, also when started in the background with SIGINT ignored.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from itertools import accumulate
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from sparring.errors import (
    BackendError,
    ConfigError,
    InvalidRequestError,
    PoolClosedError,
    PoolError,
)
from sparring.pool.types import Generation, GenerationRequest, Pool, SamplingParams

log = logging.getLogger(__name__)

POOL = web.AppKey("pool", Pool)
MAX_REQUEST_BYTES = 16 << 20  # long chat transcripts exceed aiohttp's default 1 MiB
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# OpenAI parameter -> SamplingParams field; SamplingParams stays the one place that validates.
_SAMPLING = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
             "max_tokens": "max_new_tokens", "stop": "stop", "seed": "seed"}


class HTTPError(Exception):
    """A request the server answers with an OpenAI-style error body."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind


def _bad(message: str, param: str | None = None) -> HTTPError:
    return HTTPError(400, message, param)


# -- request parsing ---------------------------------------------------------------------------
async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as error:
        raise _bad(f"the request body is not valid JSON ({error}); send a JSON object") from None
    if not isinstance(body, dict):
        raise _bad(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def _policy(pool: Pool, body: dict[str, Any]) -> str:
    name = body.get("model")
    if not isinstance(name, str) or name not in pool.policies:
        raise _bad(f"unknown model {name!r}; this server serves {pool.policies} (GET /v1/models)", "model")
    return name


_READ = frozenset({
    "model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop",
    "seed", "n", "logprobs", "top_logprobs", "echo", "prefill", "add_special_tokens", "return_token_ids",
    "include_stop_str_in_output", "add_generation_prompt", "continue_final_message",
})
"""The request fields the server reads."""
_NEUTRAL = {
    "stream": (None, False), "best_of": (None, 1), "suffix": (None, ""), "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0), "repetition_penalty": (None, 1), "min_p": (None, 0), "min_tokens": (None, 0),
    "ignore_eos": (None, False), "stop_token_ids": (None, []), "logit_bias": (None, {}), "tools": (None, []),
    "functions": (None, []), "tool_choice": (None, "none"), "response_format": (None, {"type": "text"}),
    "stream_options": (None,),
}
"""Fields the server cannot honour, accepted only at the value that asks for nothing."""
_IGNORED = frozenset({"user", "metadata", "store", "service_tier"})
"""Fields that do not change what is sampled (bookkeeping of the caller's)."""


def _refuse_unsupported(body: dict[str, Any], *, chat: bool) -> None:
    """Refuse what the pool cannot do rather than silently sample something else: a field the
    server does not read, or one it cannot honour set to anything but its neutral value."""
    unknown = sorted(set(body) - _READ - set(_NEUTRAL) - _IGNORED)
    if unknown:
        raise _bad(f"{unknown[0]} is not a field this server reads, so it would be ignored; leave it out "
                   f"(it reads {', '.join(sorted(_READ))})", unknown[0])
    if chat and body.get("echo") not in (None, False):
        raise _bad(f"echo={body['echo']!r} is not supported on /v1/chat/completions; to read a prompt's "
                   "logprobs, send its text to /v1/completions with echo=true, logprobs=0, max_tokens=0",
                   "echo")
    if body.get("echo") not in (None, False, True):
        raise _bad(f"echo={body['echo']!r} must be true or false", "echo")
    if body.get("add_special_tokens") not in (None, False):
        raise _bad(f"add_special_tokens={body['add_special_tokens']!r}: this server tokenizes prompts as they "
                   "are and adds no BOS; leave it out, or write the special tokens into the prompt",
                   "add_special_tokens")
    if body.get("n") not in (None, 1):
        raise _bad(f"n={body['n']!r}: this server returns one completion per request; send n=1 "
                   "and several requests instead (the pool batches them)", "n")
    for param, neutral in _NEUTRAL.items():
        value = body.get(param)
        if value is not None and (value not in neutral or isinstance(value, bool) != isinstance(neutral[-1], bool)):
            raise _bad(f"{param}={value!r} is not supported by this server; leave {param} out", param)


def _sampling(body: dict[str, Any]) -> SamplingParams:
    values = dict(body)
    if values.get("max_completion_tokens") is not None:  # the chat API's newer name
        values["max_tokens"] = values["max_completion_tokens"]
    if values.get("top_k") == -1:  # vLLM's spelling of "no top-k"
        values["top_k"] = 0
    kwargs = {}
    for param, field in _SAMPLING.items():
        value = values.get(param)
        if value is None:
            continue
        if param == "stop":
            value = (value,) if isinstance(value, str) else value
            if not isinstance(value, list | tuple):
                raise _bad(f"stop={value!r} must be a string or a list of strings", "stop")
        try:
            SamplingParams(**{field: value})
        except InvalidRequestError as error:
            raise _bad(str(error).replace(f"{field}=", f"{param}=", 1), param) from None
        kwargs[field] = value
    return SamplingParams(**kwargs)


def _messages(body: dict[str, Any]) -> tuple[dict[str, str], ...]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad(f"messages={messages!r} must be a non-empty list of {{'role', 'content'}} objects",
                   "messages")
    out = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _bad(f"message {message!r} must be an object with a string 'role'", "messages")
        content = message.get("content")
        if isinstance(content, list):  # OpenAI content parts: only text ones make sense here
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise _bad(f"message content {content!r}: only text parts are supported", "messages")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise _bad(f"message {message!r} needs string content (or a list of text parts)", "messages")
        out.append({"role": message["role"], "content": content})
    return tuple(out)


def _continued(body: dict[str, Any], messages: tuple[dict[str, str], ...],
               prefill: str) -> tuple[tuple[dict[str, str], ...], str]:
    """vLLM's way to prefill a chat reply: ``continue_final_message=true`` (with
    ``add_generation_prompt=false``) continues a final assistant message, which is the
    pool's prefill after the generation prompt of the messages before it."""
    continued, generation_prompt = body.get("continue_final_message"), body.get("add_generation_prompt")
    if continued not in (None, False, True) or generation_prompt not in (None, False, True):
        raise _bad("continue_final_message and add_generation_prompt must be true or false", "continue_final_message")
    if not continued:
        if generation_prompt is False:
            raise _bad("add_generation_prompt=false is supported only with continue_final_message=true (a final "
                       "assistant message to continue)", "add_generation_prompt")
        return messages, prefill
    if generation_prompt is not False:
        raise _bad("continue_final_message=true needs add_generation_prompt=false", "add_generation_prompt")
    if messages[-1]["role"] != "assistant" or len(messages) < 2:
        raise _bad("continue_final_message=true needs a final assistant message after the others",
                   "continue_final_message")
    if prefill:
        raise _bad("send the reply's start either as prefill or as a final message to continue, not both", "prefill")
    return messages[:-1], messages[-1]["content"]


# -- response building -------------------------------------------------------------------------
def _token_pieces(tokenizer: Any, ids: tuple[int, ...], context: int = 6) -> list[str]:
    """Each token's text, such that the pieces join to the decoded completion. A token alone
    decodes without its leading space (or as half a multi-byte character), so each piece is
    what it adds after a few tokens of context, as vLLM's detokenizer does; the window keeps
    the cost linear in the completion's length."""
    pieces = []
    for end in range(1, len(ids) + 1):
        window = ids[max(0, end - 1 - context): end]
        text = tokenizer.decode(window, skip_special_tokens=True)
        before = tokenizer.decode(window[:-1], skip_special_tokens=True)
        pieces.append(text[len(before):] if text.startswith(before)
                      else tokenizer.decode(window[-1:], skip_special_tokens=True))
    return pieces


def _prompt_pieces(tokenizer: Any, prompt: str, ids: list[int]) -> tuple[list[str], list[int]]:
    """Each prompt token's piece of ``prompt`` and where it starts. The pieces are cut from the
    prompt at the token ends the tokenizer reports, so they join to exactly the prompt (the
    space before a word goes with the word, as in OpenAI's tokens) and ``text_offset`` counts
    the prompt's own characters: a client that cuts a prompt from its continuation by offset
    needs that, and decoding would not give it (skipped specials, unknown words, normalised
    spaces). A tokenizer without offsets (a slow one) gets decoded pieces instead."""
    if getattr(tokenizer, "is_fast", False):
        encoding = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        if list(encoding["input_ids"]) == list(ids):
            ends = list(accumulate((end for _, end in encoding["offset_mapping"]), max))
            ends[-1] = len(prompt)  # trailing spaces that no token covers stay in the text
            starts = [0, *ends[:-1]]
            return [prompt[a:b] for a, b in zip(starts, ends)], starts
    pieces = _token_pieces(tokenizer, tuple(ids))
    return pieces, [0, *accumulate(map(len, pieces[:-1]))]


def _visible_text(gen: Generation, sampling: SamplingParams, body: dict[str, Any]) -> str:
    if gen.finish_reason == "stop" and not body.get("include_stop_str_in_output"):
        for stop in sampling.stop:
            if gen.text.endswith(stop):
                return gen.text[: -len(stop)]
    return gen.text


def _reply(gen: Generation, body: dict[str, Any], kind: str, choice: dict[str, Any]) -> web.Response:
    choice["finish_reason"] = gen.finish_reason
    if body.get("return_token_ids"):
        choice["prompt_token_ids"] = list(gen.prompt_ids)
        choice["token_ids"] = list(gen.completion_ids)
    prefix = "chatcmpl" if kind == "chat.completion" else "cmpl"
    reply = {
        "id": f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()),
        "model": gen.policy, "choices": [choice],
        "usage": {"prompt_tokens": len(gen.prompt_ids), "completion_tokens": len(gen.completion_ids),
                  "total_tokens": len(gen.prompt_ids) + len(gen.completion_ids)},
        "weights_version": gen.weights_version,
    }
    if body.get("return_token_ids") and kind == "chat.completion":
        reply["prompt_token_ids"] = list(gen.prompt_ids)  # where vLLM puts it for chat
    return web.json_response(reply)


# -- handlers ----------------------------------------------------------------------------------
async def completions(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    body = await _body(request)
    policy = _policy(pool, body)
    _refuse_unsupported(body, chat=False)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _bad(f"prompt must be one string, got {str(prompt)[:80]!r}; send token-id or batched "
                   "prompts as separate requests with text", "prompt")
    logprobs = body.get("logprobs")
    if logprobs is not None and (isinstance(logprobs, bool) or not isinstance(logprobs, int) or logprobs < 0):
        raise _bad(f"logprobs={logprobs!r} must be null or an integer >= 0", "logprobs")
    if logprobs:
        raise _bad(f"logprobs={logprobs} asks for {logprobs} alternatives per token, which this server "
                   "does not compute; send logprobs=0 for the sampled tokens' logprobs", "logprobs")
    echo, max_tokens = bool(body.get("echo")), body.get("max_tokens")
    prompt_only = max_tokens == 0 and not isinstance(max_tokens, bool)
    if prompt_only and not echo:
        raise _bad(f"max_tokens={max_tokens!r} generates nothing; send max_tokens >= 1, or echo=true with "
                   "logprobs=0 to read the prompt's logprobs", "max_tokens")
    # With nothing to sample, the other sampling parameters are still checked, then unused.
    sampling = _sampling({**body, "max_tokens": None} if prompt_only else body)
    if prompt_only:
        # The version read first counts updates queued before the pass, which apply before it.
        info = await asyncio.to_thread(pool.info, policy)
        ids, prompt_logprobs = await pool.prompt_logprobs(policy, prompt)
        gen = Generation(text="", prompt_ids=tuple(ids), completion_ids=(), logprobs=(), finish_reason="length",
                         policy=policy, weights_version=info.weights_version)
    else:
        gen = await pool.generate(GenerationRequest(policy, prompt, sampling))
        if echo and logprobs is not None:
            ids, prompt_logprobs = await pool.prompt_logprobs(policy, prompt)
    completion = _visible_text(gen, sampling, body)
    choice: dict[str, Any] = {"index": 0, "text": prompt + completion if echo else completion, "logprobs": None}
    if logprobs is not None:
        tokenizer = await asyncio.to_thread(pool.tokenizer, policy)  # a Ray pool's may load
        pieces = _token_pieces(tokenizer, gen.completion_ids)
        offsets = [0, *accumulate(map(len, pieces[:-1]))] if pieces else []
        values: list[float | None] = list(gen.logprobs)
        if echo:
            prompt_pieces, prompt_offsets = _prompt_pieces(tokenizer, prompt, ids)
            pieces = prompt_pieces + pieces
            offsets = prompt_offsets + [len(prompt) + offset for offset in offsets]
            values = [None, *prompt_logprobs, *values]
        choice["logprobs"] = {"tokens": pieces, "token_logprobs": values,
                              "text_offset": offsets, "top_logprobs": None}
    return _reply(gen, body, "text_completion", choice)


async def chat_completions(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    body = await _body(request)
    policy = _policy(pool, body)
    _refuse_unsupported(body, chat=True)
    messages = _messages(body)
    prefill = body.get("prefill") or ""
    if not isinstance(prefill, str):
        raise _bad(f"prefill={prefill!r} must be a string", "prefill")
    messages, prefill = _continued(body, messages, prefill)
    if body.get("top_logprobs"):
        raise _bad(f"top_logprobs={body['top_logprobs']!r}: this server does not compute alternatives; "
                   "send logprobs=true alone for the sampled tokens' logprobs", "top_logprobs")
    sampling = _sampling(body)
    gen = await pool.generate(GenerationRequest(policy, messages, sampling, prefill=prefill))
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "message": {
        "role": "assistant", "content": _visible_text(gen, sampling, body)}}
    if body.get("logprobs"):
        pieces = _token_pieces(await asyncio.to_thread(pool.tokenizer, policy), gen.completion_ids)
        choice["logprobs"] = {"content": [
            {"token": piece, "logprob": logprob, "bytes": list(piece.encode()), "top_logprobs": []}
            for piece, logprob in zip(pieces, gen.logprobs)]}
    return _reply(gen, body, "chat.completion", choice)


async def models(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    infos = await asyncio.to_thread(lambda: [pool.info(name) for name in pool.policies])  # Ray asks replicas
    return web.json_response({"object": "list", "data": [
        {"id": info.name, "object": "model", "created": 0, "owned_by": "sparring",
         "max_model_len": info.context_length, "weights_version": info.weights_version}
        for info in infos]})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "policies": request.app[POOL].policies})


async def weights(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    body = await _body(request)
    policy, checkpoint = body.get("policy"), body.get("checkpoint")
    if not isinstance(policy, str) or policy not in pool.policies:
        raise _bad(f"unknown policy {policy!r}; this server serves {pool.policies}", "policy")
    if not isinstance(checkpoint, str) or not checkpoint:
        raise _bad(f"checkpoint={checkpoint!r} must be the path of a safetensors file or directory "
                   "on the server's machine", "checkpoint")
    try:
        # Reading gigabytes must not stall the event loop that runs the pool's batcher.
        version = await asyncio.to_thread(pool.update_weights, policy, Path(checkpoint))
    except (OSError, ValueError) as error:
        raise _bad(f"cannot load checkpoint {checkpoint!r} into policy {policy!r}: {error}",
                   "checkpoint") from None
    return web.json_response({"policy": policy, "version": version})


# -- middlewares -------------------------------------------------------------------------------
def _error(status: int, message: str, kind: str, param: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "param": param,
                                        "code": status}}, status=status)


@web.middleware
async def _errors(request: web.Request, handler: Callable) -> web.StreamResponse:
    try:
        return await handler(request)
    except HTTPError as error:
        return _error(error.status, error.message, error.kind, error.param)
    except InvalidRequestError as error:
        return _error(400, str(error), "invalid_request_error")
    except PoolClosedError as error:
        return _error(503, str(error), "server_error")
    except (BackendError, PoolError) as error:
        log.warning("backend error on %s: %s", request.path, error)
        return _error(500, str(error), "server_error")
    except web.HTTPException as error:  # aiohttp's own: unknown route, wrong method, too large
        return _error(error.status, f"{error.reason}: {request.method} {request.path}", "invalid_request_error")
    except Exception as error:  # the client gets a message, the log the traceback
        log.exception("internal error on %s %s", request.method, request.path)
        return _error(500, f"internal server error ({type(error).__name__}); see the server log", "server_error")


def _auth(api_key: str) -> Callable:
    expected = f"Bearer {api_key}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path.startswith("/v1"):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):  # constant time: no key guessing by timing
                raise HTTPError(401, "missing or wrong API key: send the header "
                                "'Authorization: Bearer <key>' with the server's key", kind="authentication_error")
        return await handler(request)

    return check


# -- running -----------------------------------------------------------------------------------
def build_app(pool: Pool, api_key: str | None = None) -> web.Application:
    """The server's routes over ``pool``; with ``api_key``, ``/v1`` routes need it."""
    middlewares = [_errors] + ([_auth(api_key)] if api_key else [])
    app = web.Application(middlewares=middlewares, client_max_size=MAX_REQUEST_BYTES)
    app[POOL] = pool
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/weights", weights)
    app.router.add_get("/health", health)
    return app


async def serve(pool: Pool, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                *, on_ready: Callable[[str], None] | None = None, stop: asyncio.Event | None = None) -> None:
    """Serve until cancelled (or until ``stop`` is set). The pool's batcher runs on this
    event loop. ``on_ready`` receives the base URL once the socket listens (``port=0``: a
    free port); a port that cannot be bound raises :class:`~sparring.errors.ConfigError`."""
    if host not in LOOPBACK and not api_key:
        log.warning("serving on %s without an API key: anyone who reaches this port can generate "
                    "and load checkpoints; pass an api_key", host)
    # On Ctrl-C, requests in flight get a few seconds to finish; aiohttp's default is a minute.
    runner = web.AppRunner(build_app(pool, api_key), shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as error:
            reason = "is in use" if error.errno == errno.EADDRINUSE else f"cannot be bound ({error.strerror})"
            raise ConfigError(f"port {port} on {host} {reason}; choose another --port (0: any free one)") from None
        bound = runner.addresses[0][1]
        url = f"http://{'[' + host + ']' if ':' in host else host}:{bound}"
        log.info("serving policies %s at %s/v1", pool.policies, url)
        if on_ready is not None:
            on_ready(url)
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()


def run_server(pool: Pool, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
               on_ready: Callable[[str], None] | None = None) -> None:
    """Serve in the foreground until SIGINT (Ctrl-C) or SIGTERM, then close the sockets and
    return. The handlers are installed even where SIGINT was ignored (a job started in the
    background), so both signals always stop the server cleanly."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await serve(pool, host, port, api_key, on_ready=on_ready, stop=stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    asyncio.run(main())


class ServerThread:
    """The server on its own event loop in a background thread (tests, benchmarks, notebooks):
    ``with ServerThread(pool) as server: ... server.url``. The server's requests batch on that
    loop; the pool keeps one batcher per loop, so in-process callers may use it meanwhile.
    """

    def __init__(self, pool: Pool, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None, start_timeout_s: float = 30.0):
        self.pool, self.host, self.port, self.api_key = pool, host, port, api_key
        self.start_timeout_s = start_timeout_s
        self.url = ""
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"this ServerThread already runs at {self.url}; make a new one")
        self._thread = threading.Thread(target=self._main, name="sparring-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.start_timeout_s):
            raise TimeoutError(f"the server did not start within {self.start_timeout_s} s")
        if self._failure is not None:
            raise RuntimeError(f"the server failed to start on {self.host}:{self.port}: "
                               f"{self._failure}") from self._failure
        return self

    def _main(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await serve(self.pool, self.host, self.port, self.api_key, on_ready=self._started, stop=self._stop)

        try:
            asyncio.run(main())  # also cancels the pool's batcher task when the server stops
        except Exception as error:
            self._failure = error
        finally:
            self._ready.set()

    def _started(self, url: str) -> None:
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self._ready.set()

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop already ended (the server failed)
                pass
        self._thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
