"""Rollouts become per-turn samples with the right masks, rewards and origins, and survive disk."""

import asyncio
import dataclasses

import pytest

from sparring.agents import load_policy, play_many
from sparring.agents.llm import LLMPolicy
from sparring.agents.trajectories import Sample, read_samples, samples_from_episode, write_samples
from sparring.envs import make
from sparring.pool import InferencePool, SamplingParams


@pytest.fixture(scope="module")
def episodes():
    from sparring.paths import TINY_MODEL

    pool = InferencePool()
    pool.add_policy("learner", TINY_MODEL)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=24)

    def seats(i):
        attacker = LLMPolicy("learner", pool=pool, sampling=sampling) if i % 2 else load_policy("redteam.roleplay")
        return {"attacker": attacker, "defender": LLMPolicy("learner", pool=pool, sampling=sampling)}

    return asyncio.run(play_many(lambda: make("sparring/redteam-v0", revise_fraction=1.0), seats, range(6)))


def test_every_llm_move_becomes_one_sample(episodes):
    for index, episode in enumerate(episodes):
        samples = samples_from_episode(episode, f"g{index}")
        llm_turns = [t for t in episode.turns if t.generation is not None]
        assert [s.role for s in samples] == [t.agent for t in llm_turns]
        for s, turn in zip(samples, llm_turns):
            assert s.game_id == f"g{index}" and s.seed == episode.seed and s.policy == "learner"
            assert s.prompt_ids == list(turn.generation.prompt_ids)
            assert s.completion_ids == list(turn.generation.completion_ids)
            assert len(s.logprobs) == len(s.completion_ids)
            assert s.reward == episode.rewards[s.role]
            assert s.reward_terms == episode.reward_terms[s.role]
            assert s.invalid == turn.invalid
    # scripted attackers leave no sample; LLM attackers do
    assert [len(samples_from_episode(e, "g")) for e in episodes] == [1, 2, 1, 2, 1, 2]
    assert all(s.role == "defender" for s in samples_from_episode(episodes[1], "g", roles=["defender"]))


def test_the_loss_mask_covers_exactly_the_generated_tokens(episodes):
    s = samples_from_episode(episodes[1], "g")[1]  # the defender, whose prompt holds the attacker's words
    assert len(s.loss_mask) == len(s.input_ids)
    assert s.loss_mask == [0] * len(s.prompt_ids) + [1] * len(s.completion_ids)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_samples_round_trip_through_files(episodes, tmp_path, suffix):
    samples = [s for i, e in enumerate(episodes) for s in samples_from_episode(e, f"g{i}")]
    path = write_samples(tmp_path / f"batch{suffix}", samples)
    assert read_samples(path) == samples
    assert not list(tmp_path.glob("*.partial"))


def test_bad_trajectory_files_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\.jsonl or \.parquet"):
        write_samples(tmp_path / "x.csv", [])
    with pytest.raises(FileNotFoundError, match="no trajectory file"):
        read_samples(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"game_id": "g"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a JSON line"):
        read_samples(bad)
    bad.write_text('{"game_id": "g"}\n')
    with pytest.raises(ValueError, match="lacks"):
        read_samples(bad)
    with pytest.raises(ValueError, match="2 logprobs for 1 completion"):
        Sample("g", 0, "defender", "p", 0, [1], [2], [-1.0, -2.0], 0.0)


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_beside_it(episodes, tmp_path):
    samples = samples_from_episode(episodes[0], "g0")
    path = write_samples(tmp_path / "batch.jsonl", samples)
    broken = dataclasses.replace(samples[0], reward_terms={"x": object()})  # cannot be written
    with pytest.raises(TypeError):
        write_samples(path, [samples[0], broken])
    assert read_samples(path) == samples
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.jsonl"]


def test_a_damaged_parquet_file_is_a_data_error(episodes, tmp_path):
    from sparring.errors import DataError

    path = write_samples(tmp_path / "batch.parquet", samples_from_episode(episodes[0], "g0"))
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError, match="batch.parquet: not a readable Parquet file"):
        read_samples(path)
