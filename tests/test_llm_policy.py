"""LLM policies on the pool: prompts, hidden-CoT prefill, generation records, reproducibility."""

import asyncio

import pytest
from lm import make_model, make_tokenizer

from sparring.agents import play, play_many
from sparring.agents.llm import LLMPolicy
from sparring.envs import make
from sparring.pool import InferencePool, SamplingParams

SAMPLING = SamplingParams(temperature=1.0, max_new_tokens=12)


@pytest.fixture
def pool():
    pool = InferencePool()
    pool.add_policy("p", make_model(), make_tokenizer())
    return pool


def test_prefill_follows_the_games_format_request(pool):
    policy = LLMPolicy("p", pool, SAMPLING, system_prompt="be brief")
    cot = policy.request({"text": "Write reasoning, then </think>, then <answer> … </answer>.", "hidden_cot": 1})
    plain = policy.request({"text": "Answer with exactly one move in brackets, e.g. [rock].", "hidden_cot": 0})
    assert policy.request({"text": "It says </think> but asks for no format.", "hidden_cot": 0}).prefill == ""
    assert cot.prefill == "<think>" and plain.prefill == ""
    assert cot.prompt[0] == {"role": "system", "content": "be brief"}
    assert cot.sampling.seed is not None and cot.sampling.seed != policy.request({"text": "x"}).sampling.seed
    assert cot.session == plain.session  # one game's requests: one session (a Ray pool's replica)
    policy.seed(1)
    assert policy.request({"text": "x"}).session != cot.session  # the next game's


def test_self_play_game_records_generations(pool):
    seats = {"attacker": LLMPolicy("p", pool, SAMPLING), "defender": LLMPolicy("p", pool, SAMPLING)}
    episode = asyncio.run(play(make("sparring/redteam-v0", revise_fraction=1.0), seats, seed=3))
    assert [t.agent for t in episode.turns] == ["attacker", "defender"]
    for turn in episode.turns:
        gen = turn.generation
        assert gen is not None and len(gen.completion_ids) == len(gen.logprobs) > 0
        assert turn.invalid  # a random model does not write the format: a penalty, not a crash
    assert episode.reward_terms["defender"]["format"] == -1.0


def test_games_replay_exactly_however_they_are_batched(pool):
    def seats(i):
        return {"player_0": LLMPolicy("p", pool, SAMPLING), "player_1": LLMPolicy("p", pool, SAMPLING)}

    def run(concurrency):
        episodes = asyncio.run(play_many(lambda: make("sparring/matrix-v0", rounds=2), seats, range(6), concurrency))
        return [[t.action for t in e.turns] for e in episodes]

    assert run(1) == run(6)
    assert max(pool.stats.batch_sizes) > 1


def test_llm_policy_plays_through_a_remote_server(pool):
    from sparring.pool import RemotePool
    from sparring.pool.server import ServerThread

    with ServerThread(pool) as server:
        remote = RemotePool(server.url)
        seats = {a: LLMPolicy("p", remote, SAMPLING) for a in ("player_0", "player_1")}
        episode = asyncio.run(play(make("sparring/matrix-v0", rounds=2), seats, seed=1))
        assert len(episode.turns) == 4 and all(t.generation.completion_ids for t in episode.turns)
        with pytest.raises(ValueError, match="is not served by RemotePool"):
            LLMPolicy("other-model", remote)
