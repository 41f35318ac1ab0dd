"""The conformance harness: PettingZoo's own tests, Gymnasium's checker, pickling and leaks,
run over every registered game and single-agent view."""

import asyncio
import pickle

import gymnasium
import numpy as np
import pettingzoo
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

from sparring.agents import ScriptedPolicy, load_policy, play
from sparring.envs import GAMES, VIEWS, make
from sparring.envs.parsing import format_cot

# Each registered id with the argument sets that change its structure.
VARIANTS = {
    "sparring/negotiation-v0": [{}, {"hidden_cot": False, "max_messages": 4}],
    "sparring/redteam-v0": [{}, {"hidden_cot": False}, {"revise_fraction": 1.0, "zero_sum": True}],
    "sparring/matrix-v0": [
        {},
        {"game": "rock_paper_scissors", "rounds": 5, "hidden_cot": True},
        {"game": "open_spiel:matrix_sh", "rounds": 3, "invalid_ends_game": True},
        {
            "game": "three-player coordination",
            "payoffs": np.eye(2)[:, :, None, None].repeat(2, 2).repeat(3, 3).tolist(),
            "action_names": [["a", "b"]] * 3,
            "rounds": 2,
        },
    ],
    "sparring/preference-v0": [{}, {"hidden_cot": False, "prompts": "heldout"}, {"num_players": 3}],
    "sparring/router-v0": [{}, {"max_turns": 1, "cost_coef": 0.5, "expert_reward": "none", "data": "heldout"}],
    "sparring/gems-v0": [{}, {"size": 5, "blue_gems": 2, "red_gems": 2, "purple_gems": 2, "layout_seed": 0, "horizon": 12}],
    "sparring/rainbow-v0": [{"judge": "rules"}, {"judge": "rules", "hidden_cot": False},
                            {"judge": "rules", "single_elite": True, "similarity_reference": "mutator_prompt"}],
}
CASES = [(gid, kw) for gid in GAMES for kw in VARIANTS.get(gid, [{}])]
IDS = [f"{gid.split('/')[1]}-{i}" for gid in GAMES for i, _ in enumerate(VARIANTS.get(gid, [{}]))]
# Language games only (numeric games have no text to leak and no reasoning to hide).
TEXT_CASES = [(case, name) for case, name in zip(CASES, IDS) if not GAMES[case[0]].numeric]


def test_every_registered_game_has_variants():
    assert set(VARIANTS) == set(GAMES)


@pytest.mark.parametrize(("game_id", "kwargs"), CASES, ids=IDS)
def test_pettingzoo_api(game_id, kwargs):
    api_test(pettingzoo.make("aec", game_id, **kwargs), num_cycles=200)
    parallel_api_test(pettingzoo.make("parallel", game_id, **kwargs), num_cycles=200)


@pytest.mark.parametrize(("game_id", "kwargs"), CASES, ids=IDS)
def test_pettingzoo_seeding(game_id, kwargs):
    seed_test(lambda: pettingzoo.make("aec", game_id, **kwargs), num_cycles=50)
    parallel_seed_test(lambda: pettingzoo.make("parallel", game_id, **kwargs), num_cycles=50)


@pytest.mark.parametrize(("game_id", "kwargs"), CASES, ids=IDS)
def test_last_tells_each_agent_what_it_earned_since_its_move_and_its_terms_too(game_id, kwargs):
    """A plain AEC loop reads only ``last()``: its rewards add up to the game's, and its reward
    terms to its rewards (in simultaneous games a waiting agent's were lost)."""
    env = pettingzoo.make("aec", game_id, **kwargs)
    for seed in range(3):
        env.reset(seed=seed)
        for space in (env.action_space(a) for a in env.possible_agents):
            space.seed(seed)
        earned, terms, paid = {}, {}, {}
        for agent in env.agent_iter():
            _, reward, terminated, truncated, info = env.last()
            earned[agent] = earned.get(agent, 0.0) + reward
            terms[agent] = terms.get(agent, 0.0) + sum(info["reward_terms"].values())
            env.step(None if terminated or truncated else env.action_space(agent).sample())
            for a, r in env.rewards.items():
                paid[a] = paid.get(a, 0.0) + r
        assert earned == pytest.approx(paid) and terms == pytest.approx(earned)


@pytest.mark.parametrize(("game_id", "kwargs"), CASES, ids=IDS)
def test_pickle_round_trip(game_id, kwargs):
    env = make(game_id, parallel=True, **kwargs)
    env.reset(seed=7)
    clone = pickle.loads(pickle.dumps(env))
    while env.agents:
        actions = {a: env.action_space(a).sample() for a in env.agents}
        assert same(clone.step(actions), env.step(actions))
    assert clone.agents == env.agents == []


def same(a, b) -> bool:
    """Equality that also compares numpy arrays (numeric games' observations) by value."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


class NonceAgent(ScriptedPolicy):
    """Answers validly with reasoning that is unique to one move (a traceable secret)."""

    def respond(self, agent, observation):
        nonce = f"secret-{agent}-{int(self.rng.integers(1 << 40))}"
        text = observation["text"]
        if "Your moves:" in text:  # matrix: a legal move, so the game goes on
            move = text.split("Your moves: [", 1)[1].split("]", 1)[0]
            answer = f"[{move}]"
        else:
            answer = f"message-{int(self.rng.integers(1 << 40))}"
        return format_cot(nonce, answer) if observation["hidden_cot"] else answer


@pytest.mark.parametrize(("game_id", "kwargs"), [c for c, _ in TEXT_CASES], ids=[n for _, n in TEXT_CASES])
def test_no_observation_leaks_private_text(game_id, kwargs):
    for seed in range(12):
        env = make(game_id, raw=True, **kwargs)
        seen = {a: [] for a in env.possible_agents}
        secrets = {a: set() for a in env.possible_agents}
        env.reset(seed=seed)
        agents = {a: NonceAgent(seed=i) for i, a in enumerate(env.possible_agents)}
        for agent in env.agent_iter():
            for a in env.possible_agents:  # every agent looks at every moment
                if a in env.agents:
                    seen[a].append(env.observe(a)["text"])
                secrets[a].update(env.game.private_texts(a))
            obs, _, term, trunc, _ = env.last()
            env.step(None if term or trunc else asyncio.run(agents[agent].act(agent, obs)).text)
        for owner, texts in secrets.items():
            for other in env.possible_agents:
                if other == owner:
                    continue
                for secret in texts:
                    leaked = [o for o in seen[other] if secret in o]
                    assert not leaked, f"{other} saw {owner}'s private text {secret!r}"


# Ways to break the format after writing where reasoning goes (the prompt pre-filled <think>).
BROKEN_TAILS = ["", " <answer> visible? </answer>", " </answer>", " <answer>", " <answer> [rock] </answer>",
                " </think>", " </think> <answer> after </answer> </think>", " <think> again </think> x",
                " <answer> a </answer> <answer> b </answer>"]


class SecretAgent(ScriptedPolicy):
    """Writes a traceable secret where reasoning goes, then breaks the format (or not)."""

    def __init__(self, seed, written):
        super().__init__(seed)
        self.written = written

    def respond(self, agent, observation):
        secret = f"SECRET-{agent}-{int(self.rng.integers(1 << 40))}"
        self.written.append(secret)
        tail = BROKEN_TAILS[int(self.rng.integers(len(BROKEN_TAILS)))]
        return f"{secret} [rock] {tail}" if observation["hidden_cot"] else f"{secret}{tail}"


class RecordingJudge:
    """RuleJudge's verdicts, remembering every text it was shown."""

    def __init__(self):
        from sparring.judges import RuleJudge

        self.inner, self.seen = RuleJudge(), []

    def judge(self, prompt, response):
        self.seen += [prompt, response]
        return self.inner.judge(prompt, response)


COT_CASES = [(case, name) for case, name in TEXT_CASES
             if case[1].get("hidden_cot", case[0] != "sparring/matrix-v0")]


@pytest.mark.parametrize(("game_id", "kwargs"), [c for c, _ in COT_CASES], ids=[n for _, n in COT_CASES])
def test_reasoning_never_crosses_whatever_follows_it(game_id, kwargs):
    """A secret written where reasoning goes never reaches another agent or the judge, however
    the rest of the output breaks the format."""
    for seed in range(16):
        judge = RecordingJudge()
        extra = {"judge": judge} if game_id in ("sparring/redteam-v0", "sparring/rainbow-v0") else {}
        env = make(game_id, raw=True, **(kwargs | extra))
        env.reset(seed=seed)
        written = {a: [] for a in env.possible_agents}
        agents = {a: SecretAgent(seed * 10 + i, written[a]) for i, a in enumerate(env.possible_agents)}
        seen = {a: [] for a in env.possible_agents}
        for agent in env.agent_iter():
            for a in env.agents:
                seen[a].append(env.observe(a)["text"])
            obs, _, term, trunc, _ = env.last()
            env.step(None if term or trunc else asyncio.run(agents[agent].act(agent, obs)).text)
        for a in env.possible_agents:
            seen[a].append(env.observe(a)["text"])
        for owner, secrets in written.items():
            for secret in secrets:
                for other in env.possible_agents:
                    if other != owner:
                        assert not [o for o in seen[other] if secret in o], f"{other} saw {owner}'s {secret}"
                assert not [t for t in judge.seen if secret in t], f"the judge saw {owner}'s {secret}"


def test_redteam_leak_test_has_secrets_to_find():
    env = make("sparring/redteam-v0", raw=True, revise_fraction=1.0)
    env.reset(seed=0)
    env.step(format_cot("my private plan", "a rewritten prompt"))
    secrets = env.game.private_texts("attacker")
    assert "my private plan" in secrets
    assert env.game.seed.prompt in secrets
    assert any("labelled" in s for s in secrets)
    assert all(s not in env.observe("defender")["text"] for s in secrets)


@pytest.mark.parametrize("view_id", list(VIEWS))
def test_gymnasium_views_pass_check_env(view_id):
    env = gymnasium.make("sparring:" + view_id)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs["to_act"] == 1
    again, _ = env.reset(seed=3)
    assert again == obs


def test_gymnasium_view_takes_a_policy_object_and_plays_to_the_end():
    env = gymnasium.make("sparring:sparring/RedTeamDefender-v0", opponent=load_policy("redteam.hypothetical"))
    obs, _ = env.reset(seed=5)
    obs, reward, terminated, truncated, info = env.step(format_cot("It is fine.", "I'm sorry, but I can't help."))
    assert terminated and not truncated
    assert reward == sum(info["reward_terms"].values())
    assert info["invalid"] is None


def test_rollout_rewards_match_reward_terms():
    for seed in range(10):
        ep = asyncio.run(play(make("sparring/redteam-v0"), {"attacker": load_policy("redteam.roleplay"),
                                                              "defender": load_policy("redteam.comply")}, seed))
        for agent, total in ep.rewards.items():
            assert total == pytest.approx(sum(ep.reward_terms[agent].values()))
