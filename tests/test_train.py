"""The real `sparring train` on the tiny model with tiny budgets: checkpoints, metrics, resume
after a kill, and the learner's options."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lm import each_dropout
from typer.testing import CliRunner

from sparring.agents.learners import SelfPlayConfig, train
from sparring.cli import app
from sparring.runs import checkpoint_of, read_metrics

TINY_BUDGET = ["games_per_update=4", "env.revise_fraction=1.0", "agent.max_new_tokens=24", "concurrency=8"]
SPARRING = os.path.join(os.path.dirname(sys.executable), "sparring")


def run_cli(*args, timeout=300):
    return subprocess.run([SPARRING, "train", *args], capture_output=True, text=True, timeout=timeout)


def flat(text: str) -> str:
    """Output without the console's line wrapping."""
    return " ".join(text.split())


def updates(run_dir: Path) -> list[int]:
    return [row["update"] for row in read_metrics(run_dir / "metrics.jsonl")]


def test_train_writes_checkpoints_metrics_curve_and_events(tmp_path):
    run = tmp_path / "run"
    result = run_cli(*TINY_BUDGET, "updates=3", "checkpoint_every=2", f"run_dir={run}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert updates(run) == [1, 2, 3]
    rows = read_metrics(run / "metrics.jsonl")
    for key in ("reward/attacker", "reward/defender", "loss", "kl_per_sequence", "clip_frac", "grad_norm"):
        assert all(key in row for row in rows), key
    # the pool served exactly the learner's weights: sampling logprobs match the learner's
    assert all(row["behaviour_gap"] < 1e-3 for row in rows)
    assert (run / "latest").read_text().strip() == "update-000003"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["update-000002", "update-000003"]
    model_dir = run / "checkpoints" / "update-000003" / "model"
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(model_dir)  # a checkpoint is a loadable model
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((run / "config.json").read_text())["updates"] == 3


def test_a_killed_run_resumes_without_losing_or_repeating_updates(tmp_path):
    run = tmp_path / "run"
    args = [*TINY_BUDGET, "checkpoint_every=2", "keep_checkpoints=3", f"run_dir={run}"]
    proc = subprocess.Popen([SPARRING, "train", *args, "updates=1000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (run / "checkpoints" / "update-000004").is_dir():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint within the time limit"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    checkpointed = int((run / "latest").read_text().strip().removeprefix("update-"))
    before = {row["update"]: row for row in read_metrics(run / "metrics.jsonl")}
    assert checkpointed >= 4 and sorted(before)[: checkpointed] == list(range(1, checkpointed + 1))

    fresh = run_cli(*args, "updates=8")
    assert fresh.returncode == 2 and "already holds a run" in flat(fresh.stdout)

    result = run_cli(*args, "updates=8", "--resume")
    assert result.returncode == 0, result.stdout + result.stderr
    after = read_metrics(run / "metrics.jsonl")
    assert [row["update"] for row in after] == list(range(1, 9))  # none lost, none twice
    for row in after[:checkpointed]:
        assert row == before[row["update"]]  # the checkpointed history is kept as it was
    state = json.loads((run / "checkpoints" / "update-000008" / "trainer_state.json").read_text())
    assert state["update"] == 8 and state["elapsed_s"] > before[checkpointed]["elapsed_min"] * 60


def test_resume_refuses_a_changed_recipe_and_an_empty_directory(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", f"run_dir={tmp_path / 'none'}", "--resume"])
    assert result.exit_code == 2 and "nothing to resume" in flat(result.output)
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", *TINY_BUDGET, "updates=1", f"run_dir={run}"]).exit_code == 0
    result = runner.invoke(app, ["train", *TINY_BUDGET, "updates=2", "learner.lr=0.5", f"run_dir={run}", "--resume"])
    assert result.exit_code == 2 and "with a different learner" in flat(result.output)


@pytest.mark.parametrize(
    ("override", "message"),
    [("learner.algorithm=ppo", "learner.algorithm='ppo'"), ("learner=grpo", "group_size >= 2"),
     ("+seats.attacker=nobody", "unknown policy"), ("+seats.judge=learner", "not seats of"),
     ("learn_roles=[attacker]", "not played by the learner"), ("games_per_update=0", "games_per_update=0"),
     ("learner.lora={rank: 4}", "unknown field"), ("agent.temperature=0.5", "makes every update off-policy"),
     ("learner.lora={r: 4, alpha: 0}", "learner.lora.alpha=0 must be > 0"),
     ("learner.lora={r: 4, dropout: 2.0}", "dropout=2.0 must lie in [0, 1)"),
     ("learner.lora={r: 4, target_modules: [qproj]}", "target_modules=['qproj']"),
     (["learner=grpo", "group_size=2", "learner.kl_estimator=k1"], "has no gradient in expectation")],
)
def test_bad_training_config_gets_a_clear_error(override, message, tmp_path):
    overrides = override if isinstance(override, list) else [override]
    extra = ["+seats.attacker=redteam.roleplay"] if overrides[0].startswith("learn_roles") else []
    result = CliRunner().invoke(app, ["train", *overrides, *extra, f"run_dir={tmp_path / 'r'}"])
    assert result.exit_code == 2, result.output
    assert message in flat(result.output)


def config(tmp_path, **overrides):
    values = {"env": {"id": "sparring/redteam-v0"}, "agent": {"max_new_tokens": 24}, "games_per_update": 4,
              "updates": 2, "run_dir": str(tmp_path / "run"), "tensorboard": False, "plot": False}
    return SelfPlayConfig.from_dict(values | overrides)


def test_lora_training_pushes_the_adapter_and_saves_a_loadable_one(tmp_path):
    from sparring.pool import InferencePool, serve_model
    from sparring.runs import resolve_model

    metrics = train(config(tmp_path, learner={"lr": 1e-2, "lora": {"r": 4}}))
    assert [m["update"] for m in metrics] == [1, 2]
    assert all(m["behaviour_gap"] < 1e-3 for m in metrics)  # the pool's adapter is the learner's
    model = resolve_model(tmp_path / "run")
    assert model.is_adapter and (model.path / "adapter_config.json").is_file()
    pool = InferencePool()
    serve_model(pool, tmp_path / "run", name="trained")
    assert "trained" in pool.policies and pool.models["trained"].has_adapters


def test_grpo_with_a_frozen_league_opponent_trains_only_the_learners_moves(tmp_path):
    cfg = config(tmp_path, learner={"algorithm": "grpo"}, group_size=2, save_trajectories=True,
                 seats={"attacker": ["reference", "redteam.roleplay"]}, env={"id": "sparring/redteam-v0",
                                                                             "revise_fraction": 1.0})
    metrics = train(cfg)
    assert len(metrics) == 2
    from sparring.agents.trajectories import read_samples

    samples = read_samples(tmp_path / "run" / "trajectories" / "update-000001.jsonl")
    assert samples and {s.role for s in samples} == {"defender"} and {s.policy for s in samples} == {"learner"}
    assert len(samples) + metrics[0]["ties"] == 4  # one defender move per game; ties are dropped
    seed_of = {int(s.game_id.rsplit("g", 1)[1]): s.seed for s in samples}
    for game, seed in seed_of.items():  # games 0-1 and 2-3 share a seed: GRPO's groups
        partner = game ^ 1
        if partner in seed_of:
            assert seed_of[partner] == seed
    assert len(set(seed_of.values())) <= 2


def test_the_games_of_a_grpo_group_face_the_same_league_opponent(tmp_path):
    from sparring.agents.learners import SelfPlayTrainer

    cfg = config(tmp_path, learner={"algorithm": "grpo"}, group_size=2, games_per_update=8,
                 seats={"attacker": ["reference", "redteam.roleplay"]},
                 env={"id": "sparring/redteam-v0", "revise_fraction": 1.0})
    trainer = SelfPlayTrainer(cfg)
    try:
        episodes, _ = trainer.rollout(1)
    finally:
        trainer.close()
    attackers = [e.policies["attacker"] for e in episodes]
    assert all(attackers[i] == attackers[i + 1] for i in range(0, 8, 2)), attackers
    assert len(set(attackers)) == 2  # seed 0 draws both


def test_a_fresh_lora_adapter_starts_from_the_recipes_seed(tmp_path):
    from sparring.agents.learners import SelfPlayTrainer

    def adapter(seed, name):
        trainer = SelfPlayTrainer(config(tmp_path, learner={"lora": {"r": 4}}, seed=seed, run_dir=str(tmp_path / name)))
        try:
            return {k: v.clone() for k, v in trainer.learner.weights().items()}
        finally:
            trainer.close()

    first, again, other = adapter(0, "a"), adapter(0, "b"), adapter(1, "c")
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_an_update_moves_the_weights_and_the_pool_serves_them(tmp_path):
    from sparring.agents.learners import SelfPlayTrainer

    trainer = SelfPlayTrainer(config(tmp_path, learner={"lr": 1e-3}))
    try:
        before = {k: v.clone() for k, v in trainer.learner.weights().items()}
        trainer.step(1)
        after = trainer.learner.weights()
        assert any(not torch.equal(before[k], after[k]) for k in before)
        served = dict(trainer.pool.models["learner"].model.named_parameters())
        trainer.pool._apply_updates()
        for name, value in trainer.learner.model.named_parameters():
            assert torch.equal(served[name], value.detach())
    finally:
        trainer.close()


@pytest.mark.slow
def test_training_through_ray_replicas(tmp_path):
    result = run_cli(*TINY_BUDGET, "pool=ray", "pool.replicas=2", "updates=2", f"run_dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert updates(tmp_path / "run") == [1, 2]


def test_an_earlier_run_joins_the_league_as_a_frozen_opponent(tmp_path):
    from sparring.agents.learners import SelfPlayTrainer

    train(config(tmp_path, updates=1))
    earlier = str(tmp_path / "run")
    cfg = config(tmp_path, run_dir=str(tmp_path / "next"), seats={"attacker": [earlier, "learner"]},
                 env={"id": "sparring/redteam-v0", "revise_fraction": 1.0}, games_per_update=8)
    trainer = SelfPlayTrainer(cfg)
    pinned = str(checkpoint_of(earlier))  # the checkpoint the earlier run is at: a resume finds the same
    try:
        assert pinned.endswith("update-000001") and trainer.cfg.seats["attacker"] == [pinned, "learner"]
        earlier = pinned
        assert earlier in trainer.pool.policies
        frozen = trainer.pool.models[earlier].model
        before = {k: v.clone() for k, v in frozen.state_dict().items()}
        episodes, _ = trainer.rollout(1)
        attackers = [e.policies["attacker"] for e in episodes]
        assert set(attackers) <= {"learner", earlier} and earlier in attackers  # seed 0 draws both
        trainer.step(1)
        trainer.pool._apply_updates()
        assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())  # never updated
    finally:
        trainer.close()


def test_dropout_is_off_while_learning_so_the_ratio_starts_at_one(tmp_path):
    """On a model with dropout the first pass scores the samples as the old logprobs did: no
    token is clipped, and the loss is the one without dropout."""
    from sparring.agents.learners import SelfPlayTrainer
    from sparring.agents.trajectories import samples_from_episode

    trainer = SelfPlayTrainer(config(tmp_path, learner={"epochs": 1, "sft_coef": 0.0}))
    try:
        episodes, ids = trainer.rollout(1)
        samples = [s for e, g in zip(episodes, ids) for s in samples_from_episode(e, g) if not s.tie]
        rows = each_dropout(trainer.learner, (0.0, 0.5), lambda: trainer.learn(samples, 1))
        assert samples and rows[1]["clip_frac"] == 0.0
        assert rows[1]["loss"] == pytest.approx(rows[0]["loss"], rel=1e-5, abs=1e-7)
    finally:
        trainer.close()


def test_role_adapters_train_one_adapter_per_role_on_one_base(tmp_path):
    """Attacker and defender learn as two LoRA adapters of one frozen base: each role's moves
    change only its own adapter, the pool serves both on the one base, and each resumes."""
    from sparring.agents.learners import SelfPlayTrainer
    from sparring.pool import InferencePool, serve_model

    cfg = config(tmp_path, learner={"lr": 1e-2, "lora": {"r": 4}}, role_adapters=True,
                 env={"id": "sparring/redteam-v0", "revise_fraction": 1.0}, save_trajectories=True)
    trainer = SelfPlayTrainer(cfg)
    try:
        assert set(trainer.pool.policies) == {"reference", "learner-attacker", "learner-defender"}
        assert trainer.pool.models["learner-attacker"] is trainer.pool.models["learner-defender"]  # one base
        assert set(trainer.anchors) == {"defender"}  # the game's demonstrations are the defender's
        before = {role: {k: v.clone() for k, v in trainer.learner.weights(role).items()}
                  for role in ("attacker", "defender")}
        episodes, ids = trainer.rollout(1)
        from sparring.agents.trajectories import samples_from_episode

        samples = [s for e, g in zip(episodes, ids) for s in samples_from_episode(e, g) if not s.tie]
        assert {s.policy for s in samples} <= {"learner-attacker", "learner-defender"}
        defender_only = [s for s in samples if s.role == "defender"]
        trainer.learn(defender_only, 1)
        assert trainer.learner.trained_parameters("defender") and not trainer.learner.trained_parameters("attacker")
        moved = {role: any(not torch.equal(before[role][k], v) for k, v in trainer.learner.weights(role).items())
                 for role in before}
        assert moved == {"attacker": False, "defender": True}
        trainer.push_weights()
        rows = trainer.run()
    finally:
        trainer.close()
    assert rows and all(r["behaviour_gap"] < 1e-3 for r in rows)  # the pool serves each role's adapter
    model = tmp_path / "run" / "checkpoints" / "update-000002" / "model"
    assert (model / "attacker" / "adapter_config.json").is_file() and (model / "defender" / "adapter_config.json").is_file()
    pool = InferencePool()
    serve_model(pool, model / "defender", name="defender")
    assert pool.models["defender"].has_adapters
    from sparring.runs import read_safetensors

    resumed = SelfPlayTrainer(SelfPlayConfig.from_dict({**cfg.to_dict(), "updates": 3}), resume=True)
    try:
        assert resumed.update == 2
        for role in ("attacker", "defender"):
            saved = read_safetensors(model / role / "adapter_model.safetensors")
            restored = resumed.learner.weights(role)
            assert saved.keys() == restored.keys()
            assert all(torch.equal(saved[k], restored[k]) for k in saved)
    finally:
        resumed.close()


def test_role_adapters_need_a_lora_learner(tmp_path):
    from sparring.errors import ConfigError

    with pytest.raises(ConfigError, match="role_adapters=true trains one LoRA adapter per role"):
        config(tmp_path, role_adapters=True)
    with pytest.raises(ConfigError, match="per_role_norm=false whitens advantages over the whole batch"):
        config(tmp_path, role_adapters=True, learner={"lora": {"r": 4}, "per_role_norm": False})
