"""What a new user does first, run as they would run it: commands from a folder of their own,
their own agents next to them, relative paths, output to a file, resuming a run."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium
import pytest
import yaml

from sparring.arenas.report import analyse
from sparring.arenas.runner import Tournament
from sparring.arenas.store import DB_NAME
from sparring.arenas.tournament import TournamentConfig
from sparring.errors import ConfigError
from sparring.paths import TINY_MODEL
from sparring.runs import read_metrics

SPARRING = os.path.join(os.path.dirname(sys.executable), "sparring")
TESTS = Path(__file__).resolve().parent
MY_AGENTS = textwrap.dedent("""
    from sparring.agents import ScriptedPolicy

    class AlwaysRock(ScriptedPolicy):
        def respond(self, agent, observation):
            return "[rock]"
""")


def clean_env() -> dict:
    """The environment of a user's shell: nothing that points Python at the tests."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def sparring(*args, cwd, timeout=300):
    return subprocess.run([SPARRING, *args], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_own_agents_in_the_current_folder_play_and_enter_tournaments(tmp_path):
    (tmp_path / "my_agents.py").write_text(MY_AGENTS)
    played = sparring("play", "matrix-v0", "--no-human", "--set", "game=rock_paper_scissors",
                      "--seat", "player_0=my_agents:AlwaysRock", "--seat", "player_1=matrix.constant", cwd=tmp_path)
    assert played.returncode == 0, played.stdout + played.stderr
    assert "player_0 (my_agents:AlwaysRock): reward +0" in played.stdout
    arena = sparring("arena", "run", "rps", "+roster.mine={policy: my_agents:AlwaysRock}", "games_per_pairing=1",
                     cwd=tmp_path)
    assert arena.returncode == 0, arena.stdout + arena.stderr
    assert "mine" in arena.stdout and (tmp_path / "runs" / "arena" / "rps" / DB_NAME).is_file()


def test_rllib_runs_and_plays_with_relative_paths(tmp_path):
    trained = sparring("train", "engine=rllib", "iterations=1", "checkpoint_every=1", "env.rounds=3",
                       "ppo.train_batch_size_per_learner=60", "ppo.minibatch_size=30", "ppo.num_epochs=1",
                       "progress=false", "run_dir=runs/rllib/pd", cwd=tmp_path)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert (tmp_path / "runs" / "rllib" / "pd" / "checkpoints" / "update-000001" / "algorithm").is_dir()
    config = {"name": "rl", "game": {"id": "sparring/matrix-v0", "game": "prisoners_dilemma", "rounds": 3},
              "roster": {"rl": {"policy": "rllib", "checkpoint": "runs/rllib/pd"},
                         "tft": {"policy": "matrix.tit_for_tat"}},
              "games_per_pairing": 1, "bootstrap": 20}
    (tmp_path / "rl.yaml").write_text(yaml.safe_dump(config))
    arena = sparring("arena", "run", "rl.yaml", cwd=tmp_path)
    assert arena.returncode == 0, arena.stdout + arena.stderr
    report = json.loads((tmp_path / "runs" / "arena" / "rl" / "report.json").read_text())
    assert report["forfeits"] == [] and report["matches"] == 2


def test_a_gymnasium_view_takes_the_games_own_arguments():
    env = gymnasium.make("sparring:sparring/Matrix-v0", game="rock_paper_scissors", rounds=2)
    obs, _ = env.reset(seed=0)
    assert "[rock]" in obs["text"] and "[scissors]" in obs["text"]
    _, reward, terminated, _, info = env.step("[paper]")
    assert not terminated and info["invalid"] is None and reward in (-1.0, 0.0, 1.0)


def test_an_agent_that_forfeits_everything_is_dominated_in_the_meta_game(tmp_path):
    roster = {m: {"policy": "matrix.constant", "move": m} for m in ("rock", "paper", "scissors")}
    roster["crasher"] = {"policy": "arena_agents:Sleeper"}  # stalls every move (one that raises fails the probe)
    sys.path.insert(0, str(TESTS))
    try:
        tournament = Tournament.create(TournamentConfig(
            name="ff", game={"id": "sparring/matrix-v0", "game": "rock_paper_scissors"}, roster=roster,
            games_per_pairing=2, out_dir=str(tmp_path), bootstrap=20, move_timeout_s=0.2))
        analysis = analyse(tournament.cfg, tournament.run())
    finally:
        sys.path.remove(str(TESTS))
    crasher = analysis.agents.index("crasher")
    assert analysis.record["crasher"]["forfeits"] == 3 * 2 * 2
    assert analysis.nash[crasher] == pytest.approx(0.0, abs=1e-6)
    assert analysis.alpharank[crasher] < 0.01
    assert [analysis.nash[analysis.agents.index(m)] for m in ("rock", "paper", "scissors")] == pytest.approx([1 / 3] * 3,
                                                                                                         abs=1e-4)


def test_a_typo_in_an_agents_arguments_fails_before_the_first_match(tmp_path):
    roster = {"rock": {"policy": "matrix.constant", "move": "rokc"}, "paper": {"policy": "matrix.constant", "move": "paper"}}
    with pytest.raises(ConfigError, match=r"roster.rock: matrix.constant move='rokc' is not a legal move; the legal "
                                          r"moves: rock, paper, scissors"):
        Tournament.create(TournamentConfig(name="typo", game={"id": "sparring/matrix-v0", "game": "rock_paper_scissors"},
                                           roster=roster, out_dir=str(tmp_path)))
    assert not (tmp_path / "typo").exists()


def test_retraining_the_tiny_model_never_overwrites_the_shipped_one_by_accident():
    before = (TINY_MODEL / "model.safetensors").stat().st_mtime_ns
    result = subprocess.run([sys.executable, "-m", "sparring.models.pretrain", "--out", str(TINY_MODEL)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "the shipped tiny model" in result.stderr and "--force" in result.stderr
    assert (TINY_MODEL / "model.safetensors").stat().st_mtime_ns == before
    help_text = subprocess.run([sys.executable, "-m", "sparring.models.pretrain", "--help"], capture_output=True,
                               text=True, timeout=120).stdout
    assert "runs/tiny-model" in help_text


TINY_BUDGET = ["games_per_update=4", "env.revise_fraction=1.0", "agent.max_new_tokens=16", "concurrency=8",
               "tensorboard=false", "plot=false"]


def test_training_into_a_log_file_reports_progress_and_resumes_without_repeating_overrides(tmp_path):
    first = sparring("train", *TINY_BUDGET, "updates=2", "progress_every_s=0.01", "run_dir=runs/mine", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "update 1/2" in first.stdout and "update 2/2" in first.stdout  # not a terminal: plain lines
    resumed = sparring("train", "--resume", "run_dir=runs/mine", "updates=3", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    run = tmp_path / "runs" / "mine"
    assert [row["update"] for row in read_metrics(run)] == [1, 2, 3]
    saved = json.loads((run / "config.json").read_text())
    assert saved["updates"] == 3 and saved["games_per_update"] == 4 and saved["agent"]["max_new_tokens"] == 16
    changed = sparring("train", "--resume", "run_dir=runs/mine", "updates=4", "learner.lr=0.5", cwd=tmp_path)
    assert changed.returncode == 2 and "with a different learner" in changed.stdout
