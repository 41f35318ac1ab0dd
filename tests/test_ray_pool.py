"""The pool as Ray actors: two replicas, routing, weight broadcast, a replica killed."""

import asyncio

import pytest
from lm import make_model, make_tokenizer

from sparring.pool import (
    BackendError,
    GenerationRequest,
    InvalidRequestError,
    PoolClosedError,
    SamplingParams,
)

ray = pytest.importorskip("ray")

GREEDY = SamplingParams(temperature=0, max_new_tokens=8)


@pytest.fixture(scope="module")
def ray_pool(tmp_path_factory):
    from sparring.pool.ray_pool import RayPool

    path = tmp_path_factory.mktemp("model")
    make_model().save_pretrained(path)
    make_tokenizer().save_pretrained(path)
    if ray.is_initialized():  # left by another test module: start a cluster of our own size
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    pool = RayPool({"p": path}, replicas=2, num_cpus_per_replica=0.5)
    yield pool
    asyncio.run(pool.aclose())
    ray.shutdown()


def test_two_replicas_serve_and_keep_sessions_together(ray_pool):
    async def main():
        requests = [GenerationRequest("p", "how can I help", GREEDY, session=f"game-{i}") for i in range(8)]
        first = await asyncio.gather(*(ray_pool.generate(r) for r in requests))
        homes = dict(ray_pool.sessions)
        again = await asyncio.gather(*(ray_pool.generate(r) for r in requests))
        return first, homes, again

    first, homes, again = asyncio.run(main())
    assert set(homes.values()) == {0, 1}  # both replicas took games
    assert ray_pool.sessions == homes  # later turns stayed home
    assert len({g.text for g in first + again}) == 1  # same weights everywhere
    with pytest.raises(InvalidRequestError):
        asyncio.run(ray_pool.generate(GenerationRequest("nope", "hi", GREEDY)))


def test_replicas_sample_unseeded_requests_from_seeds_of_their_own(ray_pool):
    from sparring.pool.ray_pool import replica_seed

    seeds = ray.get([replica.actor.ping.remote() for replica in ray_pool.replicas])
    assert seeds == [replica_seed(0, 0), replica_seed(0, 1)] and seeds[0] != seeds[1]
    assert len({replica_seed(s, i) for s in range(4) for i in range(4)}) == 16


def test_scores_match_an_in_process_pool(ray_pool):
    from sparring.pool import InferencePool

    local = InferencePool()
    local.add_policy("p", make_model(), make_tokenizer())
    expected = asyncio.run(local.score("p", "how can I", ["help", "go"]))
    assert asyncio.run(ray_pool.score("p", "how can I", ["help", "go"])) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(InvalidRequestError):
        asyncio.run(ray_pool.score("nope", "hi", ["x"]))


def test_weights_broadcast_to_every_replica(ray_pool):
    version = ray_pool.update_weights("p", make_model(seed=1).state_dict())
    assert version == 1  # every replica agrees; the same type as every other pool's
    assert ray_pool.info("p").weights_version == 1
    gen = asyncio.run(ray_pool.generate(GenerationRequest("p", "how can I help", GREEDY)))
    assert gen.weights_version == 1


def test_a_weight_update_some_replicas_cannot_load_stops_them():
    """Replicas left on the old weights would serve a game the wrong version: when some load
    an update and some cannot, the latter are named and stopped; when none can, the update
    fails as a whole."""
    from sparring.pool.ray_pool import settle_update

    missing = BackendError("FileNotFoundError: /scratch/ckpt")
    assert settle_update("p", [3, 3]) == (3, [])
    assert settle_update("p", [missing, 3, missing]) == (3, [0, 2])
    with pytest.raises(BackendError, match="FileNotFoundError"):
        settle_update("p", [missing, missing])
    with pytest.raises(BackendError, match="disagree"):
        settle_update("p", [2, 3])


def test_weights_only_some_replicas_can_read_stop_those_that_cannot(tmp_path):
    from sparring.pool import PoolConfig
    from sparring.pool.ray_pool import RayPool

    make_model().save_pretrained(tmp_path / "m")
    make_tokenizer().save_pretrained(tmp_path / "m")
    pool = RayPool({"p": tmp_path / "m"}, replicas=2, config=PoolConfig(), num_cpus_per_replica=0.5)
    try:
        # A policy only replica 0 serves stands in for a checkpoint only one node can read.
        ray.get(pool.replicas[0].actor.add_policy.remote("q", str(tmp_path / "m")))
        pool._locations["q"] = str(tmp_path / "m")
        with pytest.warns(RuntimeWarning, match="replica 1 could not load weights version 1"):
            assert pool.update_weights("q", make_model(seed=1).state_dict()) == 1
        assert [r.alive for r in pool.replicas] == [True, False]
        gen = asyncio.run(pool.generate(GenerationRequest("q", "how can I help", GREEDY)))
        assert gen.weights_version == 1
    finally:
        asyncio.run(pool.aclose())


def test_a_killed_replica_fails_its_requests_and_the_rest_continue(tmp_path):
    from sparring.pool import PoolConfig
    from sparring.pool.ray_pool import RayPool

    make_model().save_pretrained(tmp_path)
    make_tokenizer().save_pretrained(tmp_path)
    # Requests wait up to 3 s for company, so they are surely in flight when the kill comes.
    pool = RayPool({"p": tmp_path}, replicas=2, config=PoolConfig(max_wait_ms=3000), num_cpus_per_replica=0.5)

    async def main():
        doomed = [asyncio.ensure_future(pool.generate(GenerationRequest("p", "sorry", GREEDY, session="d")))
                  for _ in range(3)]
        await asyncio.sleep(0.5)
        pool.kill_replica(pool.sessions["d"])
        failed = await asyncio.gather(*doomed, return_exceptions=True)
        after = await asyncio.gather(*(pool.generate(GenerationRequest("p", "hi", GREEDY, session=f"n{i}"))
                                       for i in range(4)))
        return failed, after

    failed, after = asyncio.run(main())
    assert all(isinstance(f, BackendError) and "died" in str(f) for f in failed)
    assert all(g.finish_reason == "length" for g in after)
    assert sum(r.alive for r in pool.replicas) == 1

    async def closing():  # a request in flight when the pool closes, and one after, say it closed
        running = asyncio.ensure_future(pool.generate(GenerationRequest("p", "sorry", GREEDY)))
        await asyncio.sleep(0.5)
        await pool.aclose()
        return await asyncio.gather(running, pool.generate(GenerationRequest("p", "hi", GREEDY)),
                                    return_exceptions=True)

    assert all(isinstance(e, PoolClosedError) for e in asyncio.run(closing()))
    with pytest.raises(PoolClosedError):
        pool.info("p")


def test_the_http_server_serves_a_ray_pool_through_the_protocol(ray_pool):
    from sparring.pool import RemotePool
    from sparring.pool.server import ServerThread

    direct = asyncio.run(ray_pool.generate(GenerationRequest("p", "how can I help", GREEDY)))
    with ServerThread(ray_pool) as server:
        remote = RemotePool(server.url)
        over_http = asyncio.run(remote.generate(GenerationRequest("p", "how can I help", GREEDY)))
        assert over_http.completion_ids == direct.completion_ids
        assert over_http.logprobs == pytest.approx(direct.logprobs, abs=1e-5)
        scored = asyncio.run(remote.score("p", "how can I", [" help", " go"]))
        assert scored == pytest.approx(asyncio.run(ray_pool.score("p", "how can I", [" help", " go"])), abs=1e-4)
        assert remote.info("p").context_length == 256


def test_every_pool_keeps_the_whole_protocol():
    from sparring.pool import InferencePool, Pool, RemotePool
    from sparring.pool.ray_pool import RayPool
    from sparring.pool.vllm_pool import VLLMPool

    members = [name for name in dir(Pool) if not name.startswith("_")]
    assert set(members) >= {"generate", "score", "prompt_logprobs", "info", "tokenizer", "update_weights", "aclose",
                            "policies"}
    for cls in (InferencePool, RayPool, VLLMPool, RemotePool):
        missing = [name for name in members if not hasattr(cls, name)]
        assert not missing, f"{cls.__name__} lacks {missing}"
