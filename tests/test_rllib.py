"""RLlib on the discrete views: RLlib's env checks and env runner, the turn-taking contract,
every shipped recipe trains, checkpoints, resumes, and its policies play sparring games and
arena tournaments."""

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from typer.testing import CliRunner

from sparring.agents import load_policy
from sparring.agents.rollout import play
from sparring.arenas.report import analyse, write_reports
from sparring.arenas.runner import Tournament
from sparring.arenas.tournament import TournamentConfig
from sparring.cli import app
from sparring.envs import make
from sparring.paths import config_dir
from sparring.runs import read_metrics
from sparring.views.discrete import env_creator, make_discrete
from sparring.views.rllib import (
    RLlibConfig,
    RLlibPolicy,
    SimultaneousEnv,
    TurnBasedEnv,
    train_rllib,
)

# RLlib's env runners register their env with Gymnasium under one name, each time they are built.
pytestmark = pytest.mark.filterwarnings("ignore:.*Overriding environment rllib-multi-agent-env-v0")

TINY = ["iterations=2", "checkpoint_every=1", "ppo.train_batch_size_per_learner=64", "ppo.minibatch_size=32",
        "ppo.num_epochs=1", "progress=false", "metrics_smoothing_episodes=10"]
VIEW_CONFIGS = {
    "redteam": {"game": "sparring/redteam-v0"},
    "redteam-vs-attacker": {"game": "sparring/redteam-v0", "opponents": {"attacker": "redteam.hypothetical"}},
    "matrix": {"game": "sparring/matrix-v0", "game_kwargs": {"rounds": 3}},
    "matrix-vs-tft": {"game": "sparring/matrix-v0", "opponents": {"player_1": "matrix.tit_for_tat"}},
    "preference": {"game": "sparring/preference-v0", "role_in_obs": True},
    "negotiation": {"game": "sparring/negotiation-v0", "opponents": {"player_1": "negotiation.softmax"}},
}


def recipe(name: str, run_dir: Path, *extra: str) -> dict:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="rllib", overrides=[f"rllib={name}", *TINY, f"run_dir={run_dir}", *extra])
    return OmegaConf.to_container(cfg, resolve=True)


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("name", list(VIEW_CONFIGS))
def test_rllib_env_checks_accept_the_pettingzoo_wrapper_and_the_turn_based_view(name):
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.rllib.utils.pre_checks.env import check_multiagent_environments

    check_multiagent_environments(ParallelPettingZooEnv(env_creator(VIEW_CONFIGS[name])))
    check_multiagent_environments(TurnBasedEnv(VIEW_CONFIGS[name]))


def test_a_numeric_game_goes_to_rllib_as_it_is(tmp_path):
    from ray.rllib.utils.pre_checks.env import check_multiagent_environments

    env = SimultaneousEnv({"game": "sparring/gems-v0", "game_kwargs": {"size": 5}})
    check_multiagent_environments(env)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"blue", "red"} and obs["blue"].shape == env.observation_spaces["blue"].shape
    obs, rewards, terminated, truncated, _ = env.step({"blue": 1, "red": 2})
    assert set(obs) == set(rewards) == {"blue", "red"} and terminated["__all__"] is False
    shown = SimultaneousEnv({"game": "sparring/gems-v0", "game_kwargs": {"size": 5}, "render_mode": "ansi"})
    shown.reset(seed=0)
    turn_based = TurnBasedEnv({"game": "sparring/matrix-v0", "render_mode": "ansi"})
    turn_based.reset(seed=0)
    assert isinstance(shown.render(), str) and isinstance(turn_based.render(), str)  # RLlib's own render raised
    with pytest.raises(ValueError, match="gems-v0 is a numeric game.*view.encoder has nothing to set"):
        train_rllib({**recipe("gems", tmp_path / "v"), "view": {"encoder": "minilm"}})


def test_an_agent_observes_only_when_its_move_counts_and_every_mover_closes_its_episode():
    env = TurnBasedEnv({"game": "sparring/redteam-v0"})
    seen = {True: 0, False: 0}
    for seed in range(12):
        obs, _ = env.reset(seed=seed)
        revised = env.par_env.game.revised
        seen[revised] += 1
        assert list(obs) == (["attacker"] if revised else ["defender"])
        movers = set(obs)
        obs, rewards, terminated, truncated, infos = env.step({a: 1 for a in obs})
        if revised:  # the defender moves next; the attacker waits without an observation
            assert list(obs) == ["defender"] and set(rewards) <= {"attacker", "defender"}
            assert terminated == {"__all__": False}
            movers |= set(obs)
            obs, rewards, terminated, truncated, infos = env.step({"defender": 1})
        # the end: a final observation, the reward and the termination of each agent that moved
        assert set(obs) == set(rewards) == set(infos) == movers
        assert terminated == {**dict.fromkeys(movers, True), "__all__": True}
        assert truncated["__all__"] is False
        if not revised:
            assert "attacker" not in rewards  # in a verbatim game the attacker is not a player
    assert seen[True] and seen[False]


def test_rllibs_env_runner_samples_the_plain_pettingzoo_wrapper():
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.tune.registry import register_env

    register_env("sparring_redteam_plain", lambda ctx: ParallelPettingZooEnv(make_discrete("sparring/redteam-v0")))
    config = (PPOConfig().environment("sparring_redteam_plain")
              .multi_agent(policies={"attacker", "defender"}, policy_mapping_fn=lambda agent, episode, **kw: agent))
    runner = MultiAgentEnvRunner(config=config)
    episodes = runner.sample(num_episodes=6, random_actions=True)
    assert len(episodes) == 6 and all(e.is_done for e in episodes)
    assert {a for e in episodes for a in e.agent_ids} == {"attacker", "defender"}
    runner.stop()


@pytest.fixture(scope="module", autouse=True)
def _ray_shut_down_afterwards():
    yield
    import ray

    ray.shutdown()


@pytest.fixture(scope="module")
def tft_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("rllib") / "tft"
    train_rllib(recipe("matrix_tft", run))
    return run


@pytest.mark.parametrize("name", ["matrix", "redteam", "redteam_shared", "gems"])
def test_every_recipe_trains_writes_metrics_and_a_checkpoint_whose_policy_plays(name, tmp_path):
    run = tmp_path / name
    metrics = train_rllib(recipe(name, run))
    assert [row["update"] for row in metrics] == [1, 2]
    policies = {"matrix": ["shared"], "redteam": ["attacker", "defender"], "redteam_shared": ["shared"],
                "gems": ["blue", "red"]}[name]
    for row in metrics:
        assert all(f"return/{p}" in row and f"policy_loss/{p}" in row for p in policies), row
    assert (run / "latest").read_text().strip() == "update-000002"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["update-000001", "update-000002"]
    assert (run / "learning_curve.png").stat().st_size > 1000
    game = RLlibConfig.from_dict(json.loads((run / "config.json").read_text())).env
    env = make(game["id"], **{k: v for k, v in game.items() if k != "id"})
    seats = {agent: RLlibPolicy(run) for agent in env.possible_agents}
    episode = asyncio.run(play(env, seats, seed=0))
    assert episode.turns and all(turn.invalid is None for turn in episode.turns)


def test_the_cli_trains_with_engine_rllib_refuses_to_overwrite_and_resumes_from_the_checkpoint(tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    budget = [o for o in TINY if not o.startswith("iterations=")]
    args = ["train", "engine=rllib", "rllib=matrix_tft", *budget, "plot=false", f"run_dir={run}"]
    result = runner.invoke(app, [*args, "iterations=2"])
    assert result.exit_code == 0, result.output
    assert "trained 2 iterations" in flat(result.output)
    before = read_metrics(run / "metrics.jsonl")
    again = runner.invoke(app, [*args, "iterations=2"])
    assert again.exit_code == 2 and "already holds a run" in flat(again.output)
    changed = runner.invoke(app, [*args, "iterations=3", "ppo.lr=0.1", "--resume"])
    assert changed.exit_code == 2 and "with a different ppo" in flat(changed.output)
    resumed = runner.invoke(app, [*args, "iterations=3", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    after = read_metrics(run / "metrics.jsonl")
    assert [row["update"] for row in after] == [1, 2, 3] and after[:2] == before
    # The restored algorithm continues its counters: iteration 3 sampled on top of the first two.
    assert after[2]["num_env_steps_sampled_lifetime"] > before[1]["num_env_steps_sampled_lifetime"]


def test_the_rllib_policy_encodes_like_the_view_and_plays_the_strategy_it_picks(tft_run):
    policy = load_policy("rllib", checkpoint=str(tft_run), policy_id="player_0")
    view = make_discrete("sparring/matrix-v0", dims=64, rounds=10, opponents={"player_1": "matrix.tit_for_tat"})
    vectors, _ = view.reset(seed=0)
    env = make("sparring/matrix-v0", parallel=True, rounds=10)
    raw, _ = env.reset(seed=0)
    np.testing.assert_array_equal(policy.encoder.encode({"player_0": raw["player_0"]})["player_0"],
                                  vectors["player_0"])
    index = policy.choose("player_0", raw["player_0"])
    text = asyncio.run(policy.act("player_0", raw["player_0"])).text
    assert text == f"[{view.strategies['player_0'][index].name}]"
    with pytest.raises(ValueError, match="policy_id='nobody'.*its policies: \\['player_0'\\]"):
        RLlibPolicy(tft_run, policy_id="nobody")


def test_a_checkpoint_whose_strategies_no_longer_match_the_table_is_refused(tmp_path, tft_run):
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(tft_run / "checkpoints" / (tft_run / "latest").read_text().strip(), checkpoint)
    described = json.loads((checkpoint / "sparring_view.json").read_text())
    described["strategies"]["player_0"] = ["defect", "cooperate"]
    (checkpoint / "sparring_view.json").write_text(json.dumps(described))
    with pytest.raises(ValueError, match=r"are \['cooperate', 'defect'\], but .* was trained with \['defect', 'cooperate'\]"):
        RLlibPolicy(checkpoint)


def test_an_arena_tournament_with_an_rllib_agent_produces_a_report(tmp_path, tft_run):
    game = {"id": "sparring/matrix-v0", "game": "prisoners_dilemma", "rounds": 10}
    roster = {"ppo": {"policy": "rllib", "checkpoint": str(tft_run)}, "tit_for_tat": {"policy": "matrix.tit_for_tat"},
              "defector": {"policy": "matrix.constant", "move": "defect"}}
    tournament = Tournament.create(TournamentConfig(name="rl", game=game, roster=roster, games_per_pairing=2,
                                                    out_dir=str(tmp_path), bootstrap=50))
    matches = tournament.run()
    assert len(matches) == 12 and all(m.status == "done" for m in matches)
    analysis = analyse(tournament.cfg, matches)
    paths = write_reports(analysis, tmp_path / "rl")
    assert paths["html"].is_file()
    assert "ppo" in {row["agent"] for row in analysis.leaderboard()}


def test_bad_recipes_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="policy_sharing='both'"):
        RLlibConfig.from_dict({**recipe("matrix", tmp_path), "policy_sharing": "both"})
    shared = {**recipe("redteam", tmp_path), "policy_sharing": "shared"}
    with pytest.raises(ValueError, match="set view.uniform_actions=true"):
        train_rllib(shared)
    with pytest.raises(ValueError, match="set view.role_in_obs=true"):
        train_rllib({**shared, "view": {**shared["view"], "uniform_actions": True}, "run_dir": str(tmp_path / "b")})
    with pytest.raises(ValueError, match="unknown field"):
        train_rllib({**recipe("matrix", tmp_path), "learning_rate": 1.0})


def load_benchmark():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "rllib_learning.py"
    spec = importlib.util.spec_from_file_location("rllib_learning", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


def test_the_best_response_to_tit_for_tat_is_to_cooperate_and_defect_in_the_last_round():
    benchmark, _ = load_benchmark()
    value, moves = benchmark.tft_best_response(10)
    assert value == 3 * 9 + 5 and moves == ["cooperate"] * 9 + ["defect"]
    assert benchmark.tft_best_response(1) == (5.0, ["defect"])  # one-shot: defection dominates


@pytest.mark.slow
def test_the_learning_benchmark_prints_its_figures_as_one_json_object(tmp_path):
    _, path = load_benchmark()
    out = subprocess.run([sys.executable, str(path), "--json", "--ipd-iterations", "1", "--redteam-iterations", "1",
                          "--run-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, check=True)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    ipd = summary["ipd_vs_tit_for_tat"]
    assert ipd["best_response_return"] == 32 and ipd["always_defect_return"] == 14
    assert ipd["always_cooperate_return"] == 30 and ipd["iterations"] >= 1
    for when in ("before", "after"):
        for split in ("train", "heldout"):
            rates = summary["redteam_defender"][when][split]
            assert 0 <= rates["refusal_on_harmful"] <= 1 and 0 <= rates["compliance_on_benign"] <= 1
