"""The benchmark scripts run and honour their --json contract (figures are not judged here)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_env_overhead_prints_one_json_object_last():
    pytest.importorskip("textarena")
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "env_overhead.py"), "--json", "--games", "3", "--repeats", "1", "--reused"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("sparring_steps_per_s", "textarena_fresh_env_steps_per_s", "ratio_fresh_env", "ratio_reused_env"):
        assert summary[key] > 0
    assert summary["ratio_fresh_env"] == pytest.approx(
        summary["sparring_steps_per_s"] / summary["textarena_fresh_env_steps_per_s"], rel=0.01)
    assert summary["meets_target"] == (summary["ratio_fresh_env"] >= summary["target_ratio"])


def test_pool_throughput_prints_its_figures_as_json():
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "pool_throughput.py"), "--json", "--games", "4", "--rounds", "1", "--max-new-tokens", "8",
         "--naive-seconds", "1", "--adapters", "2", "--no-scaling"],
        capture_output=True, text=True, timeout=600, check=True,
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("raw_tok_s", "pool_tok_s", "naive_tok_s", "generate_tok_s", "pool_vs_generate", "pool_vs_raw",
                "pool_vs_naive", "lora_mem_mb", "copies_mem_mb", "n_games", "scaling"):
        assert key in summary
    assert summary["pool_vs_generate"] == pytest.approx(summary["pool_tok_s"] / summary["generate_tok_s"], rel=0.02)
    assert summary["n_games"] == 4 and summary["pool_tok_s"] > 0
    assert summary["lora_mem_mb"] < summary["copies_mem_mb"]


def test_selfplay_learning_prints_before_and_after_as_json(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "selfplay_learning.py"), "--json", "--minutes", "0.02", "--games", "2",
         "--games-per-update", "4", "--seeds", "0", "--eval-seeds", "0,1", "--run-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=900, check=True,
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("before_mean", "before_std", "after_mean", "after_std", "minutes"):
        assert isinstance(summary[key], float), key
    for key in ("safety", "compliance", "contrast_compliance"):
        assert set(summary[key]) == {"before_mean", "before_std", "after_mean", "after_std"}, key
        assert set(summary["static_attacker"][key]) == {"before_mean", "before_std", "after_mean", "after_std"}
    assert set(summary["attack_diversity"]) == {"selfplay", "static_defender"}
    assert summary["seeds"]["0"]["updates"] >= 1 and isinstance(summary["meets_bar_every_seed"], bool)
    assert len(summary["answers"]) == 5
    assert (tmp_path / "runs" / "selfplay-seed0" / "learning_curve.png").is_file()
    assert "greedy answers to held-out prompts" in out.stdout


def test_inpo_learning_prints_win_rates_as_json(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "inpo_learning.py"), "--json", "--iterations", "1", "--prompts", "2",
         "--answers", "2", "--games", "2", "--run-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=True,
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    entry = summary["win_rate_vs_initial"]["iter1"]
    assert entry["lo"] <= entry["rate"] <= entry["hi"] and entry["games"] == 4
    assert (tmp_path / "inpo-iterates" / "report.html").is_file()


def test_rainbow_defender_prints_refusal_and_compliance_before_and_after_as_json(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "rainbow_defender.py"), "--json", "--iterations", "8", "--minutes", "0.02",
         "--games", "2", "--games-per-update", "4", "--eval-seeds", "0,1", "--run-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900, check=True,
    )
    from sparring.envs.rainbow import load_archive

    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("refusal", "compliance"):
        assert set(summary[key]) == {"before_mean", "before_std", "after_mean", "after_std"}, key
    assert set(summary["variants"]) == {"archive", "styled_benign"}
    for variant in summary["variants"].values():
        assert variant["updates"] >= 1 and isinstance(variant["bar"]["all"], bool)
        assert "styled_benign_compliance" in variant and "plain_refusal" in variant
    assert summary["refusal"] == summary["variants"]["archive"]["refusal"]
    held_out = (tmp_path / "heldout_attacks.txt").read_text().splitlines()
    trained = {e.prompt for e in load_archive(tmp_path / "archive-train").entries()}
    assert held_out and not set(held_out) & trained  # the held-out attacks were never trained on


def test_router_learning_prints_the_router_baselines_and_sweep_as_json(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "router_learning.py"), "--json", "--minutes", "0.02", "--alphas", "0,0.5",
         "--games", "4", "--eval-seeds", "0,1", "--serial-games", "2", "--games-per-update", "4",
         "--run-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900, check=True,
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(summary["router"]) >= {"em", "em_std", "cost", "cost_std"}
    assert set(summary["baselines"]) == {"cheapest", "strongest", "random", "oracle"}
    assert all(set(b) >= {"em", "cost"} for b in summary["baselines"].values())
    assert [p["alpha"] for p in summary["sweep"]] == [0.0, 0.5] and all({"em", "cost"} <= set(p) for p in summary["sweep"])
    assert summary["throughput_router_moves_per_s"]["pool_64"] > 0 and isinstance(summary["bar"]["all"], bool)
    assert (tmp_path / "pareto.png").stat().st_size > 1000


def test_mamql_gems_prints_returns_and_reward_correlations_as_json(tmp_path):
    plot = tmp_path / "curves.png"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "mamql_gems.py"), "--json", "--demos", "2,3", "--steps", "20",
         "--plot", str(plot)], capture_output=True, text=True, timeout=600, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["demos"] == [2, 3]
    assert set(figures["pearson"]) == {"mamql", "bc", "iq_learn"}
    assert all(len(figures["returns"][m]) == 2 for m in ("mamql", "bc", "iq_learn"))
    assert figures["returns"]["expert"] > 6 and plot.stat().st_size > 1000


def test_mamql_negotiation_prints_recovery_and_imitation_as_json():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "mamql_negotiation.py"), "--json", "--demos", "10,20", "--encoders",
         "position", "--steps", "50", "--heldout-games", "10", "--eval-seeds", "2", "--eval-games", "3",
         "--parts", "recovery"],
        capture_output=True, text=True, timeout=600, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    found = figures["encoders"]["position"]
    assert figures["demos"] == [10, 20] and set(found["pearson"]) == {"mamql", "bc", "iq_learn"}
    assert all(len(found["returns_by_demos"][m]) == 2 for m in found["pearson"])
    assert set(found["returns"]["bc"]) == {"mean", "std"} and found["rows"] > 0
    assert figures["expert"]["mean"] > figures["random"]["mean"]
    assert "llm" not in figures


def test_mamql_negotiation_trains_and_scores_llm_negotiators_as_json(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "mamql_negotiation.py"), "--json", "--demos", "10", "--parts", "llm",
         "--steps", "20", "--sft-steps", "2", "--rl-updates", "1", "--rl-games", "2", "--eval-seeds", "2",
         "--eval-games", "2", "--heldout-games", "5", "--run-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=600, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures["llm"]) == {"bc", "irl_rl", "true_rl"} and figures["encoders"] == {}
    assert all(set(r) == {"mean", "std", "invalid"} and 0 <= r["invalid"] <= 1 for r in figures["llm"].values())
    assert (tmp_path / "runs" / "irl_rl" / "config.json").is_file()


def test_qd_compare_prints_both_archives_figures_as_json():
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "qd_compare.py"), "--json", "--iterations", "8", "--mutator", "rainbow.style",
         "--throughput-updates", "1"],
        capture_output=True, text=True, timeout=600, check=True,
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for name in ("multi", "single"):
        for key in ("unique_prompts", "coverage", "qd_score", "diverse_score", "embedding_diversity", "asr"):
            assert key in summary[name], (name, key)
        assert summary[name]["candidates"] == 80 and 0 <= summary[name]["kept_rate"] <= 1
    assert summary["multi"]["unique_prompts"] >= summary["single"]["unique_prompts"]
    smaller = min(summary["multi"]["unique_prompts"], summary["single"]["unique_prompts"])
    assert summary["diversity_sample"] == max(2, min(256, smaller))  # both compared on as many prompts
    assert set(summary["bar"]) == {"ten_times_the_prompts", "diversity_kept"}
    assert summary["throughput_candidates_per_s"]["pool_10"] > 0


def test_mutator_learning_prints_held_out_search_figures_before_and_after_as_json(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "mutator_learning.py"), "--json", "--minutes", "0.02", "--games-per-update", "4",
         "--iterations", "4", "--num-mutations", "2", "--eval-seeds", "0", "--run-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900, check=True,
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["updates"] >= 1
    for key in ("asr", "prompt_asr", "fit_rate", "invalid", "filtered", "unique_prompts"):
        assert set(summary["metrics"][key]) == {"before_mean", "before_std", "after_mean", "after_std"}, key
    assert (tmp_path / "mutator" / "metrics.jsonl").is_file()  # the trained mutator's run
    assert "held-out searches" in out.stdout
