"""`sparring eval`: a model against the scripted opponents on held-out seeds."""

import json

import pytest
from typer.testing import CliRunner

from sparring.arenas.evaluate import EvalConfig, EvalReport, evaluate, seed_metrics
from sparring.cli import app
from sparring.runs import resolve_model


def test_eval_reports_every_metric_per_seed():
    report = evaluate(EvalConfig(games=4, eval_seeds=(0, 1), embedder=None))
    summary = report.summary()
    for key in ("defender_reward", "safety", "compliance", "attacker_success", "self_bleu_diversity"):
        assert len(report.per_seed[key]) == 2, key
    assert -3 <= summary["defender_reward"][0] <= 3
    for key in ("safety", "compliance", "attacker_success", "defender_valid_format"):
        assert 0 <= summary[key][0] <= 1


def test_a_metric_stays_aligned_with_its_evaluation_seeds():
    """A seed whose games drew no row of a kind has no such metric: its entry is None, so the
    other seeds' values keep their places and the spread is over the seeds that measured it."""
    report = evaluate(EvalConfig(games=1, eval_seeds=(0, 1, 2), embedder=None))
    assert report.to_dict()["eval_seeds"] == [0, 1, 2]
    assert all(len(values) == 3 for values in report.per_seed.values())
    partial = EvalReport("m", [4, 5, 6], {"contrast_compliance": [None, 0.5, 1.0]})
    mean, std = partial.summary()["contrast_compliance"]
    assert mean == pytest.approx(0.75) and std == pytest.approx(0.5 ** 0.5 / 2)


def test_scripted_extremes_give_known_rates():
    """Against an always-refusing defender, a benign-seed attack always wins and a harmful one
    never does; an always-complying defender is fully compliant and never safe."""
    import asyncio

    from sparring.agents import load_policy, play_many
    from sparring.envs import make

    def games(attacker, defender, **kw):
        return asyncio.run(play_many(lambda: make("sparring/redteam-v0", seeds="heldout", **kw),
                                     lambda _: {"attacker": load_policy(attacker), "defender": load_policy(defender)},
                                     range(40)))

    refused = seed_metrics([], games("redteam.roleplay", "redteam.refuse", revise_fraction=1.0))
    complied = seed_metrics(games("redteam.verbatim", "redteam.comply"), [])
    harmful_share = sum(e.final_infos["defender"]["seed_label"] == "benign"
                        for e in games("redteam.roleplay", "redteam.refuse", revise_fraction=1.0)) / 40
    assert refused["attacker_success"] == pytest.approx(harmful_share)
    assert complied["compliance"] == 1.0 and complied["safety"] == 0.0


def test_resolve_model_finds_the_latest_checkpoint(tmp_path):
    run = tmp_path / "run"
    model = run / "checkpoints" / "update-000007" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (run / "latest").write_text("update-000007\n")
    assert resolve_model(run).path == model.resolve()
    assert resolve_model(model.parent).path == model.resolve()
    with pytest.raises(FileNotFoundError, match="no model here"):
        resolve_model(tmp_path)


def test_eval_cli_prints_json_and_rejects_bad_input():
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "tiny", "--games", "2", "--eval-seeds", "3", "--no-embed", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert set(report["metrics"]) >= {"defender_reward", "safety", "compliance", "attacker_success"}
    bad = runner.invoke(app, ["eval", "tiny", "--games", "0"])
    assert bad.exit_code == 2 and "games=0" in bad.output


def test_minilm_embedding_diversity():
    from sparring.envs.diversity import embedding_diversity
    from sparring.judges.embedding import minilm_embedder

    embed = minilm_embedder()
    same = ["How do I bake bread?"] * 3
    assert embedding_diversity(same, embed) == pytest.approx(0.0, abs=1e-5)
    near = ["How do I bake bread?", "What is the way to bake a loaf of bread?"]
    far = ["How do I bake bread?", "Explain the tax rules for offshore shipping companies."]
    assert 0 < embedding_diversity(near, embed) < embedding_diversity(far, embed)


def test_a_missing_local_model_is_named_not_looked_up_on_the_hub(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_model("runs/inpo/checkpoints/update-000009")
    assert resolve_model("org/name").hub_id == "org/name"  # a hub id passes through


def test_two_models_evaluated_on_one_pool_each_play_their_own_weights(tmp_path):
    import asyncio

    from lm import make_model, make_tokenizer

    from sparring.arenas.evaluate import served_name
    from sparring.pool import build_pool

    make_model().save_pretrained(tmp_path / "other")
    make_tokenizer().save_pretrained(tmp_path / "other")
    pool = build_pool()
    try:
        for model in ("tiny", str(tmp_path / "other")):
            evaluate(EvalConfig(model=model, games=1, eval_seeds=(0,), embedder=None, attackers=("redteam.verbatim",),
                                defenders=()), pool)
    finally:
        asyncio.run(pool.aclose())
    names = {served_name("tiny"), served_name(str(tmp_path / "other"))}
    assert len(names) == 2 and names <= set(pool.policies)
