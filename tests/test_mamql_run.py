"""The inverse-RL run: recorded demonstrations in, a resumable run directory out, and its
policies playing the game in tournaments."""

import asyncio
import json

import numpy as np
import pytest
import torch

from sparring.agents import load_policy, play
from sparring.agents.learners import config_for
from sparring.agents.learners.mamql_run import LEARNER_FILE, IRLPolicy, IRLRun, train_irl
from sparring.agents.trajectories import record_transitions, write_transitions
from sparring.envs import make
from sparring.errors import ConfigError, DataError, NotFoundError
from sparring.runs import read_metrics

GEMS = {"id": "sparring/gems-v0", "size": 5, "blue_gems": 2, "red_gems": 2, "purple_gems": 2, "layout_seed": 0}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    seats = {a: load_policy("gems.greedy") for a in ("blue", "red")}
    kwargs = {k: v for k, v in GEMS.items() if k != "id"}
    rows = record_transitions(lambda: make("gems-v0", parallel=True, **kwargs), seats, range(6))
    return write_transitions(tmp_path_factory.mktemp("demos") / "demos.jsonl", rows)


def recipe(demos, run_dir, **extra):
    return {"trainer": "mamql", "env": GEMS, "demonstrations": str(demos), "updates": 4, "steps_per_update": 10,
            "eval_every": 2, "eval_games": 2, "checkpoint_every": 2, "run_dir": str(run_dir), "plot": False,
            "irl": {"hidden": [32], "batch_size": 64, "equilibrium_iters": 3}, **extra}


@pytest.mark.parametrize("method", ["mamql", "iq_learn", "bc"])
def test_a_run_learns_checkpoints_and_its_policies_play(demos, tmp_path, method):
    run = tmp_path / method
    metrics = train_irl(recipe(demos, run, method=method))
    assert [row["update"] for row in metrics] == [1, 2, 3, 4]
    assert all("return/blue" in metrics[i] and "return/red" in metrics[i] for i in (1, 3))
    assert all(k.startswith(("loss/", "return/", "update", "elapsed")) for row in metrics for k in row)
    assert (run / "latest").read_text().strip() == "update-000004"
    assert (run / "checkpoints" / "update-000004" / LEARNER_FILE).is_file()
    policy = load_policy("irl", checkpoint=str(run), seed=0)
    episode = asyncio.run(play(make("gems-v0", **{k: v for k, v in GEMS.items() if k != "id"}),
                               {"blue": policy, "red": load_policy("gems.greedy")}, seed=0))
    assert episode.turns and all(t.invalid is None for t in episode.turns if t.agent == "blue")


@pytest.mark.parametrize("online", [False, True], ids=["offline", "online"])
def test_a_run_killed_after_a_checkpoint_resumes_to_where_an_uninterrupted_one_ends(demos, tmp_path, monkeypatch,
                                                                                    online):
    irl = {"hidden": [32], "batch_size": 64, "equilibrium_iters": 3, "online": online, "online_every": 15,
           "online_episodes": 2}
    recipe_ = lambda d, r, **kw: recipe(d, r, irl=irl, **kw)  # noqa: E731
    whole = tmp_path / "whole"
    train_irl(recipe_(demos, whole))
    part = tmp_path / "part"
    learn = IRLRun.step

    def killed_at_three(self, update):
        if update == 3:
            raise KeyboardInterrupt
        return learn(self, update)

    monkeypatch.setattr(IRLRun, "step", killed_at_three)
    with pytest.raises(KeyboardInterrupt):
        train_irl(recipe_(demos, part))
    monkeypatch.setattr(IRLRun, "step", learn)
    assert (part / "latest").read_text().strip() == "update-000002"
    train_irl(recipe_(demos, part), resume=True)
    a = torch.load(whole / "checkpoints" / "update-000004" / LEARNER_FILE, weights_only=True)
    b = torch.load(part / "checkpoints" / "update-000004" / LEARNER_FILE, weights_only=True)
    assert a["steps_done"] == b["steps_done"] == 40
    for name, tensor in a["nets"].items():
        assert torch.equal(tensor, b["nets"][name]), name
    assert [r["update"] for r in read_metrics(part / "metrics.jsonl")] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="with a different method"):
        train_irl(recipe_(demos, part, method="bc", updates=5), resume=True)


def test_a_finished_run_given_more_updates_goes_on_learning(demos, tmp_path):
    run = tmp_path / "run"
    train_irl(recipe(demos, run, updates=2))
    train_irl(recipe(demos, run, updates=4), resume=True)
    before = torch.load(run / "checkpoints" / "update-000002" / LEARNER_FILE, weights_only=True)
    after = torch.load(run / "checkpoints" / "update-000004" / LEARNER_FILE, weights_only=True)
    assert after["steps_done"] == 40
    assert any(not torch.equal(before["nets"][k], after["nets"][k]) for k in before["nets"])


def test_bad_recipes_and_files_get_clear_errors(demos, tmp_path):
    with pytest.raises(NotFoundError, match="no such file"):
        train_irl(recipe(tmp_path / "missing.jsonl", tmp_path / "a"))
    with pytest.raises(ConfigError, match="demonstrations= is empty"):
        config_for(recipe("", tmp_path / "b"))
    with pytest.raises(DataError, match="recorded in another game"):  # numeric demonstrations for a language game
        train_irl({**recipe(demos, tmp_path / "c"), "env": {"id": "sparring/negotiation-v0"},
                   "encoder": "sparring.envs.negotiation:position_features"})
    with pytest.raises(ConfigError, match="method='gail' is unknown"):
        config_for(recipe(demos, tmp_path / "d", method="gail"))
    with pytest.raises(ConfigError, match="set env.. as the demonstrations were recorded"):
        train_irl({**recipe(demos, tmp_path / "e"), "env": {**GEMS, "size": 6}})
    with pytest.raises(NotFoundError, match="no learner.pt here"):
        IRLPolicy(tmp_path)


def test_the_cli_trains_from_a_recorded_file(demos, tmp_path):
    from typer.testing import CliRunner

    from sparring.cli import app

    result = CliRunner().invoke(app, ["train", "train=mamql", f"demonstrations={demos}", "updates=2",
                                      "steps_per_update=5", "eval_every=2", "eval_games=1", "plot=false",
                                      "irl.hidden=[16]", f"run_dir={tmp_path / 'cli'}"])
    assert result.exit_code == 0, result.output
    assert "trained 2 updates" in " ".join(result.output.split())
    saved = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert saved["method"] == "mamql" and np.isfinite(read_metrics(tmp_path / "cli" / "metrics.jsonl")[-1]["return/blue"])
