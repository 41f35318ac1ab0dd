"""The OpenAI-compatible server and RemotePool: plain HTTP, the openai client, equality with
the in-process pool, API keys, bad requests, weight updates, retries, scoring by echo.
Loopback only."""

import asyncio
import gc
import json
import socket
import urllib.error
import urllib.request
from itertools import accumulate

import openai
import pytest
from aiohttp import web
from lm import make_model, make_tokenizer

from sparring.judges.lm import GuardScorer
from sparring.pool import (
    BackendError,
    GenerationRequest,
    InferencePool,
    InvalidRequestError,
    PoolConfig,
    SamplingParams,
)
from sparring.pool.remote import RemotePool
from sparring.pool.server import ServerThread

KEY = "sekrit"
MESSAGES = ({"role": "user", "content": "what is the answer"},)


def make_pool() -> InferencePool:
    pool = InferencePool(PoolConfig(max_wait_ms=2))
    pool.add_policy("p", make_model(), make_tokenizer())
    return pool


@pytest.fixture(scope="module")
def server():
    with ServerThread(make_pool()) as running:
        yield running


@pytest.fixture(scope="module")
def keyed_server():
    with ServerThread(make_pool(), api_key=KEY) as running:
        yield running


def http(url: str, body=None, key: str | None = None, raw: bytes | None = None):
    """(status, decoded JSON) of one request; a body makes it a POST."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_completions_over_plain_http(server):
    status, body = http(f"{server.url}/v1/completions", {
        "model": "p", "prompt": "how can I help", "max_tokens": 8, "temperature": 0,
        "logprobs": 0, "return_token_ids": True})
    assert status == 200 and body["object"] == "text_completion" and body["model"] == "p"
    choice = body["choices"][0]
    expected = asyncio.run(server.pool.generate(  # in process, next to the server
        GenerationRequest("p", "how can I help", SamplingParams(temperature=0, max_new_tokens=8))))
    assert choice["text"] == expected.text and choice["finish_reason"] == expected.finish_reason
    assert tuple(choice["token_ids"]) == expected.completion_ids
    assert tuple(choice["prompt_token_ids"]) == expected.prompt_ids
    logprobs = choice["logprobs"]
    assert logprobs["token_logprobs"] == pytest.approx(list(expected.logprobs), abs=1e-5)
    assert len(logprobs["tokens"]) == len(logprobs["text_offset"]) == len(expected.completion_ids)
    if expected.finish_reason == "length":  # no EOS: the pieces spell the text
        assert "".join(logprobs["tokens"]) == choice["text"]
        assert logprobs["text_offset"][-1] == len(choice["text"]) - len(logprobs["tokens"][-1])
    assert body["usage"] == {"prompt_tokens": len(expected.prompt_ids), "completion_tokens":
                             len(expected.completion_ids), "total_tokens": len(expected.prompt_ids)
                             + len(expected.completion_ids)}


def test_chat_completions_with_prefill_logprobs_and_stop_strings(server):
    url = f"{server.url}/v1/chat/completions"
    base = {"model": "p", "messages": list(MESSAGES), "max_tokens": 10, "temperature": 0,
            "prefill": "sure", "logprobs": True, "return_token_ids": True}
    status, free = http(url, base)
    assert status == 200 and free["object"] == "chat.completion"
    choice = free["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert len(choice["logprobs"]["content"]) == len(choice["token_ids"]) > 0
    assert {"token", "logprob"} <= set(choice["logprobs"]["content"][0])
    prompt = make_tokenizer().decode(choice["prompt_token_ids"])
    assert prompt.startswith("<|user|>") and prompt.rstrip().endswith("sure")

    continued = {**base, "messages": [*MESSAGES, {"role": "assistant", "content": "sure"}], "prefill": None,
                 "continue_final_message": True, "add_generation_prompt": False}
    status, same = http(url, continued)  # vLLM's way to prefill: the same prompt
    assert status == 200 and same["choices"][0]["prompt_token_ids"] == choice["prompt_token_ids"]
    assert same["choices"][0]["token_ids"] == choice["token_ids"]

    stop = choice["message"]["content"].split()[1]
    _, cut = http(url, {**base, "stop": stop})
    _, kept = http(url, {**base, "stop": [stop], "include_stop_str_in_output": True})
    cut, kept = cut["choices"][0], kept["choices"][0]
    assert cut["finish_reason"] == kept["finish_reason"] == "stop"
    assert kept["message"]["content"].endswith(stop)  # the pool's convention, on request
    assert cut["message"]["content"] == kept["message"]["content"][: -len(stop)]  # OpenAI's default


def test_models_and_health(server):
    status, models = http(f"{server.url}/v1/models")
    assert status == 200 and [m["id"] for m in models["data"]] == ["p"]
    assert http(f"{server.url}/health") == (200, {"status": "ok", "policies": ["p"]})


def test_the_openai_client_talks_to_it(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    completion = client.completions.create(model="p", prompt="the game is", max_tokens=5,
                                           temperature=0, logprobs=0)
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert len(completion.choices[0].logprobs.token_logprobs) == completion.usage.completion_tokens
    chat = client.chat.completions.create(model="p", messages=list(MESSAGES), max_tokens=5, temperature=0,
                                          logprobs=True, seed=1, extra_body={"top_k": 5})
    assert isinstance(chat.choices[0].message.content, str)
    assert len(chat.choices[0].logprobs.content) == chat.usage.completion_tokens
    assert [m.id for m in client.models.list()] == ["p"]
    with pytest.raises(openai.BadRequestError, match="n=2"):
        client.completions.create(model="p", prompt="hi", n=2)


def test_remote_pool_equals_the_in_process_pool(server, recwarn):
    remote = RemotePool(server.url)
    greedy = SamplingParams(temperature=0, max_new_tokens=10)
    requests = [GenerationRequest("p", "what is the game", greedy),
                GenerationRequest("p", "what is the game", greedy, prefill=" you"),
                GenerationRequest("p", MESSAGES, greedy, prefill="sure"),
                GenerationRequest("p", MESSAGES, SamplingParams(temperature=0.8, top_k=5, max_new_tokens=10, seed=3))]
    free = asyncio.run(server.pool.generate(requests[0]))
    requests.append(GenerationRequest("p", "what is the game", SamplingParams(
        temperature=0, max_new_tokens=10, stop=(free.text.split()[1],))))
    extension = RemotePool(server.url, chat_prefill="extension")  # the prefill field only this server reads
    for request in requests:  # one asyncio.run each: the client must survive changing loops
        got = asyncio.run(remote.generate(request))
        assert asyncio.run(extension.generate(request)).completion_ids == got.completion_ids
        want = asyncio.run(server.pool.generate(request))
        assert (got.text, got.prompt_ids, got.completion_ids, got.finish_reason) == \
               (want.text, want.prompt_ids, want.completion_ids, want.finish_reason)
        assert got.logprobs == pytest.approx(want.logprobs, abs=1e-5)
    assert remote.policies == ["p"]
    gc.collect()
    assert not [w for w in recwarn if issubclass(w.category, ResourceWarning)]  # sessions closed


def test_api_key_guards_v1_routes_but_not_health(keyed_server):
    url = keyed_server.url
    status, body = http(f"{url}/v1/models")
    assert status == 401 and "Authorization: Bearer" in body["error"]["message"]
    assert http(f"{url}/v1/models", key="wrong")[0] == 401
    assert http(f"{url}/v1/completions", {"model": "p", "prompt": "hi"}, key="wrong")[0] == 401
    assert http(f"{url}/v1/models", key=KEY)[0] == 200
    assert http(f"{url}/health")[0] == 200
    request = GenerationRequest("p", "hi", SamplingParams(temperature=0, max_new_tokens=3))
    assert asyncio.run(RemotePool(url, api_key=KEY).generate(request)).completion_ids
    with pytest.raises(InvalidRequestError, match="401"):
        asyncio.run(RemotePool(url, api_key="wrong", retries=0).generate(request))


@pytest.mark.parametrize(("body", "param", "match"), [
    ({"model": "p", "prompt": "hi", "temperature": -1}, "temperature", "temperature=-1"),
    ({"model": "p", "prompt": "hi", "max_tokens": 0}, "max_tokens", "max_tokens=0"),
    ({"model": "q", "prompt": "hi"}, "model", "unknown model 'q'"),
    ({"model": "p", "prompt": "hi", "n": 2}, "n", "n=2"),
    ({"model": "p", "prompt": "hi", "stream": True}, "stream", "stream=True is not supported"),
    ({"model": "p", "prompt": "hi", "logprobs": 3}, "logprobs", "logprobs=0"),
    ({"model": "p", "prompt": "hi", "min_p": 0.5}, "min_p", "min_p=0.5 is not supported"),
    ({"model": "p", "prompt": "hi", "ignore_eos": True}, "ignore_eos", "ignore_eos=True is not supported"),
    ({"model": "p", "prompt": "hi", "mirostat_tau": 5}, "mirostat_tau", "mirostat_tau is not a field this server reads"),
    ({"model": "p", "prompt": "how " * 300}, None, "exceeds the context"),
    (b"{not json", None, "not valid JSON"),
])
def test_bad_requests_get_a_400_naming_the_problem_and_the_server_keeps_serving(server, body, param, match):
    raw = body if isinstance(body, bytes) else None
    status, reply = http(f"{server.url}/v1/completions", None if raw else body, raw=raw)
    assert status == 400 and reply["error"]["type"] == "invalid_request_error"
    assert match in reply["error"]["message"] and reply["error"]["param"] == param
    assert "Traceback" not in reply["error"]["message"]
    assert http(f"{server.url}/v1/completions", {"model": "p", "prompt": "hi", "max_tokens": 2})[0] == 200


def test_bad_chat_requests_and_unknown_routes(server):
    status, reply = http(f"{server.url}/v1/chat/completions", {"model": "p", "messages": "hi"})
    assert status == 400 and reply["error"]["param"] == "messages"
    continued = {"model": "p", "messages": [*MESSAGES, {"role": "assistant", "content": "sure"}],
                 "continue_final_message": True}
    status, reply = http(f"{server.url}/v1/chat/completions", continued)  # the generation prompt still on
    assert status == 400 and "add_generation_prompt=false" in reply["error"]["message"]
    status, reply = http(f"{server.url}/v1/chat/completions", {"model": "p", "messages": list(MESSAGES),
                                                               "add_generation_prompt": False})
    assert status == 400 and reply["error"]["param"] == "add_generation_prompt"
    status, reply = http(f"{server.url}/v1/nothing", {})
    assert status == 404 and "/v1/nothing" in reply["error"]["message"]


def test_weight_update_through_the_server_changes_the_version(tmp_path):
    make_model(seed=1).save_pretrained(tmp_path, safe_serialization=True)
    body = {"model": "p", "prompt": "the game is", "max_tokens": 5, "temperature": 0, "logprobs": 0}
    with ServerThread(make_pool()) as running:
        _, before = http(f"{running.url}/v1/completions", body)
        assert http(f"{running.url}/v1/weights", {"policy": "p", "checkpoint": str(tmp_path)}) == \
               (200, {"policy": "p", "version": 1})
        _, after = http(f"{running.url}/v1/completions", body)
        assert (before["weights_version"], after["weights_version"]) == (0, 1)
        assert after["choices"][0]["logprobs"]["token_logprobs"] != \
               pytest.approx(before["choices"][0]["logprobs"]["token_logprobs"], abs=1e-3)
        assert RemotePool(running.url).update_weights("p", tmp_path) == 2
        status, reply = http(f"{running.url}/v1/weights", {"policy": "p", "checkpoint": str(tmp_path / "no")})
        assert status == 400 and "no safetensors checkpoint" in reply["error"]["message"]
        with pytest.raises(InvalidRequestError, match="unknown policy 'q'"):
            RemotePool(running.url).update_weights("q", tmp_path)


def test_concurrent_http_requests_batch_together():
    pool = InferencePool(PoolConfig(max_wait_ms=50))
    pool.add_policy("p", make_model(), make_tokenizer())
    prompts = ["how can I help", "the game is rock paper scissors", "sorry", "what is the answer to the user"]
    requests = [GenerationRequest("p", t, SamplingParams(temperature=0, max_new_tokens=6)) for t in prompts]

    async def together(remote):
        try:
            return await asyncio.gather(*(remote.generate(r) for r in requests))
        finally:
            await remote.aclose()

    with ServerThread(pool) as running:
        got = asyncio.run(together(RemotePool(running.url)))
        assert max(pool.stats.batch_sizes) > 1  # several HTTP requests shared a batch
        alone = [asyncio.run(pool.generate(r)) for r in requests]
        with pytest.raises(RuntimeError, match=f"failed to start on 127.0.0.1:{running.port}"):
            ServerThread(pool, port=running.port).start()  # the port is taken
    assert [g.completion_ids for g in got] == [a.completion_ids for a in alone]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_remote_pool_retries_connection_errors_then_raises_backend_error():
    remote = RemotePool(f"http://127.0.0.1:{free_port()}", retries=2, backoff_s=0.01, timeout_s=2)
    with pytest.raises(BackendError, match="gave up after 3 attempts.*cannot reach"):
        asyncio.run(remote.generate(GenerationRequest("p", "hi")))


def test_remote_pool_retries_5xx_never_4xx_and_bounds_time():
    """Against a scripted server: 503 twice then a vLLM-style reply (no token ids); a 400;
    a reply slower than the timeout."""
    bodies, script = [], []

    async def completions(request):
        bodies.append(await request.json())
        step = script.pop(0)
        if step == "slow":
            await asyncio.sleep(0.6)
        if isinstance(step, int):
            return web.json_response({"error": {"message": f"scripted {step}"}}, status=step)
        return web.json_response({"choices": [{"text": "ok", "finish_reason": "length",
                                               "logprobs": {"token_logprobs": [-0.5, -0.25]}}]})

    async def main():
        app = web.Application()
        app.router.add_post("/v1/completions", completions)
        app.router.add_post("/v1/chat/completions", completions)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        remote = RemotePool(url, retries=3, backoff_s=0.01, timeout_s=0.3)
        try:
            script[:] = [503, 503, "ok"]
            got = await remote.generate(GenerationRequest("p", "hi", prefill=" there"))
            assert len(bodies) == 3 and bodies[0]["prompt"] == "hi there"
            # vLLM's defaults would add a BOS and the model's own top_k / repetition penalty
            assert bodies[0]["add_special_tokens"] is False and bodies[0]["top_k"] == -1
            assert bodies[0]["repetition_penalty"] == 1.0 and bodies[0]["min_p"] == 0.0
            assert (got.text, got.logprobs, got.prompt_ids, got.completion_ids) == ("ok", (-0.5, -0.25), (), ())
            script[:] = [400]
            with pytest.raises(InvalidRequestError, match="HTTP 400.*scripted 400"):
                await remote.generate(GenerationRequest("p", MESSAGES, prefill="sure"))
            assert len(bodies) == 4  # not retried
            assert bodies[-1]["messages"][-1] == {"role": "assistant", "content": "sure"}
            assert bodies[-1]["continue_final_message"] is True
            script[:] = ["slow"]
            with pytest.raises(BackendError, match="timeout_s=0.3"):
                await remote.generate(GenerationRequest("p", "hi"))
            assert len(bodies) == 5  # a timeout is not retried
            script[:] = [500] * 4
            with pytest.raises(BackendError, match="gave up after 4 attempts.*scripted 500"):
                await remote.generate(GenerationRequest("p", "hi"))
        finally:
            await remote.aclose()
            await runner.cleanup()

    asyncio.run(main())


def test_remote_pool_turns_replies_of_the_wrong_shape_into_backend_errors():
    replies = {"/v1/completions": {"choices": [{"text": None, "logprobs": None, "message": None}]},
               "/v1/chat/completions": {"choices": [{"message": None}]}, "/v1/models": [1, 2],
               "/v1/weights": {"version": "new"}}

    async def reply(request):
        return web.json_response(replies[request.path])

    async def main():
        app = web.Application()
        for path in replies:
            app.router.add_route("*", path, reply)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        remote = RemotePool(f"http://127.0.0.1:{runner.addresses[0][1]}", retries=0)
        try:
            for call in (remote.generate(GenerationRequest("p", MESSAGES)), remote.list_policies(),
                         remote.aupdate_weights("p", "/x"), remote.score("p", "hi", [" there"])):
                with pytest.raises(BackendError, match="unexpected reply|not an object"):
                    await call
        finally:
            await remote.aclose()
            await runner.cleanup()

    asyncio.run(main())


def test_remote_pool_refuses_bad_settings():
    with pytest.raises(ValueError, match="retries=-1"):
        RemotePool("http://127.0.0.1:1", retries=-1)
    with pytest.raises(ValueError, match="base_url='127.0.0.1:8000'"):
        RemotePool("127.0.0.1:8000")


# -- scoring over HTTP: echo with prompt logprobs ------------------------------------------------
GUARD = "user {prompt} answer {response} answer"


def test_echo_returns_the_prompt_and_its_teacher_forced_logprobs(server):
    url = f"{server.url}/v1/completions"
    status, body = http(url, {"model": "p", "prompt": "how can I help", "echo": True, "logprobs": 0,
                              "max_tokens": 0, "return_token_ids": True})
    assert status == 200
    choice = body["choices"][0]
    assert choice["text"] == "how can I help" and choice["finish_reason"] == "length"
    echoed = choice["logprobs"]
    assert echoed["tokens"] == ["how", " can", " I", " help"]  # cut from the prompt: they join to it
    assert echoed["text_offset"] == [0, 3, 7, 9]
    assert echoed["token_logprobs"][0] is None and len(echoed["token_logprobs"]) == 4
    # The logprobs after the first token are those the in-process pool scores "can I help" by.
    rest = asyncio.run(server.pool.score("p", "how", [" can I help"]))[0]
    assert sum(echoed["token_logprobs"][1:]) == pytest.approx(rest, abs=1e-5)
    assert choice["prompt_token_ids"] == make_tokenizer()("how can I help", add_special_tokens=False)["input_ids"]
    assert choice["token_ids"] == [] and body["usage"]["completion_tokens"] == 0
    assert body["usage"]["prompt_tokens"] == 4

    # With a completion: the prompt's part, then the completion's as without echo.
    plain = {"model": "p", "prompt": "how can I help", "max_tokens": 4, "temperature": 0, "logprobs": 0}
    _, alone = http(url, plain)
    _, both = http(url, {**plain, "echo": True})
    alone, both = alone["choices"][0], both["choices"][0]
    assert both["text"] == "how can I help" + alone["text"]
    assert both["logprobs"]["tokens"] == echoed["tokens"] + alone["logprobs"]["tokens"]
    assert both["logprobs"]["token_logprobs"] == pytest.approx(
        echoed["token_logprobs"] + alone["logprobs"]["token_logprobs"], abs=1e-5)
    assert both["logprobs"]["text_offset"] == [0, 3, 7, 9] + [14 + o for o in alone["logprobs"]["text_offset"]]
    _, no_logprobs = http(url, {**plain, "echo": True, "logprobs": None})
    assert no_logprobs["choices"][0]["text"] == both["text"] and no_logprobs["choices"][0]["logprobs"] is None

    # The openai client reads the same shape.
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    completion = client.completions.create(model="p", prompt="how can I help", echo=True, logprobs=0, max_tokens=0)
    assert completion.choices[0].logprobs.token_logprobs == pytest.approx(echoed["token_logprobs"])


@pytest.mark.parametrize(("prompt", "continuations"), [
    ("user how can I help answer", [" sorry", " sure", " sure thing"]),
    ("user how can I help answer su", ["re"]),  # "su" is unknown; "sure" straddles the boundary
    ("the game is rock paper scissors and you move ", ["rock", "paper"]),  # the space goes with the prompt
])
def test_remote_score_equals_the_in_process_score(server, prompt, continuations):
    got = asyncio.run(RemotePool(server.url).score("p", prompt, continuations))
    want = asyncio.run(server.pool.score("p", prompt, continuations))
    assert got == pytest.approx(want, abs=1e-4)


def test_guard_scorer_over_a_remote_pool(server):
    kwargs = {"template": GUARD, "unsafe": " sorry", "safe": " sure"}
    remote = GuardScorer(RemotePool(server.url), "p", **kwargs).score("how can I help", "sure")
    local = GuardScorer(server.pool, "p", **kwargs).score("how can I help", "sure")
    assert 0.0 < remote < 1.0 and remote == pytest.approx(local, abs=1e-4)


def test_remote_score_refuses_what_scores_nothing(server):
    remote = RemotePool(server.url)
    with pytest.raises(InvalidRequestError, match="continuation '' adds no token"):
        asyncio.run(remote.score("p", "how can I help", [""]))
    with pytest.raises(InvalidRequestError, match="give a non-empty prompt"):
        asyncio.run(remote.score("p", "", ["how can I help"]))
    with pytest.raises(InvalidRequestError, match="unknown model 'q'"):
        asyncio.run(remote.score("q", "how", [" can"]))


@pytest.mark.parametrize(("route", "body", "param", "match"), [
    ("completions", {"prompt": "hi", "max_tokens": 0, "logprobs": 0}, "max_tokens", "or echo=true"),
    ("completions", {"prompt": "hi", "echo": True, "max_tokens": 0, "logprobs": -1}, "logprobs", "logprobs=-1"),
    ("completions", {"prompt": "hi", "echo": True, "max_tokens": 0, "logprobs": 2}, "logprobs", "logprobs=0"),
    ("completions", {"prompt": "hi", "echo": "yes", "max_tokens": 0}, "echo", "echo='yes' must be true or false"),
    ("completions", {"prompt": [5, 6], "echo": True, "max_tokens": 0}, "prompt", "prompt must be one string"),
    ("completions", {"prompt": "hi", "echo": True, "max_tokens": 0, "temperature": -1}, "temperature",
     "temperature=-1"),
    ("completions", {"prompt": "how " * 300, "echo": True, "max_tokens": 0}, None, "exceeds the context"),
    ("chat/completions", {"messages": list(MESSAGES), "echo": True}, "echo", "send its text to /v1/completions"),
    ("completions", {"prompt": "hi", "echo": True, "max_tokens": 0, "add_special_tokens": True},
     "add_special_tokens", "adds no BOS"),
])
def test_bad_echo_requests_get_a_400_and_scoring_goes_on(server, route, body, param, match):
    status, reply = http(f"{server.url}/v1/{route}", {"model": "p", **body})
    assert status == 400 and reply["error"]["type"] == "invalid_request_error"
    assert match in reply["error"]["message"] and reply["error"]["param"] == param
    assert len(asyncio.run(RemotePool(server.url).score("p", "how can", [" I", " help"]))) == 2


def test_remote_score_against_a_vllm_style_server():
    """vLLM decodes the echoed tokens (here with a BOS the prompt text lacks) and retries
    through 503s like any request; the continuation is still cut at the right token."""
    bodies, script = [], []

    async def completions(request):
        bodies.append(await request.json())
        if script.pop(0) == 503:
            return web.json_response({"error": {"message": "busy"}}, status=503)
        tokens = ["<s>", "how", " can", " I", " help", " sure"]
        offsets = [0, *accumulate(map(len, tokens[:-1]))]
        return web.json_response({"choices": [{"text": "how can I help sure", "finish_reason": "length", "logprobs": {
            "tokens": tokens, "text_offset": offsets, "token_logprobs": [None, -1.0, -2.0, -3.0, -4.0, -0.5],
            "top_logprobs": None}}]})

    async def main():
        app = web.Application()
        app.router.add_post("/v1/completions", completions)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        remote = RemotePool(f"http://127.0.0.1:{runner.addresses[0][1]}", retries=2, backoff_s=0.01)
        try:
            script[:] = [503, "ok"]
            assert await remote.score("p", "how can I help", [" sure"]) == [-0.5]
            assert len(bodies) == 2 and bodies[-1] == {
                "model": "p", "prompt": "how can I help sure", "echo": True, "logprobs": 0, "max_tokens": 0,
                "temperature": 0, "add_special_tokens": False}
            script[:] = ["ok"]  # the same reply read as " help sure" after "how can I"
            assert await remote.score("p", "how can I", [" help sure"]) == [-4.5]
        finally:
            await remote.aclose()
            await runner.cleanup()

    asyncio.run(main())
