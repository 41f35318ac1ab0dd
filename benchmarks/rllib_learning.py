"""RLlib learning on the discrete views: PPO (new API stack) reaches known answers.

(a) Iterated prisoner's dilemma, 10 rounds, against a fixed tit-for-tat seated inside the env
    (recipe ``configs/rllib/matrix_tft.yaml``). With a known horizon the best response to
    tit-for-tat is to cooperate and defect in the last round only; it is computed here by
    dynamic programming over tit-for-tat's state from the game's payoff table (32 with the
    built-in payoffs, against 30 for always cooperating and 14 for always defecting). The
    trained policy plays greedily in the *text* game (through ``RLlibPolicy``) against the
    scripted tit-for-tat; its return and its moves are reported next to those references, and
    the initial policy's (sampled) return as the starting point.
(b) redteam-v0's defender against the scripted role-play attacker (recipe
    ``configs/rllib/redteam.yaml`` with the attacker seated in the env; half the games pass the
    seed verbatim). Each seed prompt is played once verbatim and once rewritten; the game's judge
    says whether the defender refused. Reported: refusal rate on harmful seeds and compliance
    rate on benign seeds, on the training seeds and the held-out ones, for the initial policy
    (sampled: what PPO starts from) and the trained one (greedy).

Run::

    python benchmarks/rllib_learning.py                      # readable summary
    python benchmarks/rllib_learning.py --json               # the last stdout line is one JSON object
    python benchmarks/rllib_learning.py --encoder minilm --redteam-iterations 100

Training is seeded, so a run repeats exactly; the iteration budgets (not a clock) bound it,
with ``--max-minutes`` as a cap per task (about 2 and 1 minutes on a 2-core laptop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sparring.agents import load_policy
from sparring.agents.rollout import play
from sparring.envs import make
from sparring.envs.redteam import load_seeds
from sparring.paths import config_dir
from sparring.views.rllib import RLlibPolicy, train_rllib

ROUNDS = 10


def recipe(name: str, overrides: list[str]) -> dict[str, Any]:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return OmegaConf.to_container(compose(config_name="rllib", overrides=[f"rllib={name}", *overrides]),
                                      resolve=True)


def tft_best_response(rounds: int) -> tuple[float, list[str]]:
    """Best total against tit-for-tat (which opens with the first move, then repeats ours),
    by backward induction over its state: the move it will play."""
    table = make("sparring/matrix-v0", parallel=True, rounds=rounds).game.table
    names, pay = table.action_names[0], table.payoffs[..., 0]
    n = len(names)
    value = np.zeros((rounds + 1, n))
    choice = np.zeros((rounds, n), dtype=int)
    for t in range(rounds - 1, -1, -1):
        for s in range(n):  # s: tit-for-tat's move this round
            totals = [pay[a, s] + value[t + 1, a] for a in range(n)]
            choice[t, s] = int(np.argmax(totals))
            value[t, s] = max(totals)
    moves, state = [], 0
    for t in range(rounds):
        moves.append(names[choice[t, state]])
        state = choice[t, state]
    return float(value[0, 0]), moves


def play_tft(policy, seeds: range) -> list[tuple[float, list[str]]]:
    results = []
    for seed in seeds:
        env = make("sparring/matrix-v0", rounds=ROUNDS)
        seats = {"player_0": policy, "player_1": load_policy("matrix.tit_for_tat")}
        episode = asyncio.run(play(env, seats, seed=seed))
        moves = [t.action.strip("[]") for t in episode.turns if t.agent == "player_0"]
        results.append((episode.rewards["player_0"], moves))
    return results


def ipd(run_dir: Path, iterations: int, minutes: float, progress: bool) -> dict[str, Any]:
    best, best_moves = tft_best_response(ROUNDS)
    fixed = {move: play_tft(load_policy("matrix.constant", move=move), range(1))[0][0]
             for move in ("cooperate", "defect")}
    common = [f"run_dir={run_dir}", f"progress={str(progress).lower()}"]
    train_rllib(recipe("matrix_tft", [*common, "iterations=0"]))
    before = play_tft(RLlibPolicy(run_dir, explore=True), range(20))
    started = time.perf_counter()
    metrics = train_rllib(recipe("matrix_tft", [*common, f"iterations={iterations}", f"max_minutes={minutes}"]),
                          resume=True)
    after_return, after_moves = play_tft(RLlibPolicy(run_dir), range(1))[0]
    return {
        "best_response_return": best, "best_response_moves": best_moves,
        "always_cooperate_return": fixed["cooperate"], "always_defect_return": fixed["defect"],
        "before_return_mean": float(np.mean([r for r, _ in before])),
        "after_return": after_return, "after_moves": after_moves,
        "reached_best_response": after_return == best,
        "iterations": metrics[-1]["update"], "minutes": (time.perf_counter() - started) / 60,
    }


def defender_rates(policy, split: str) -> dict[str, float]:
    """Refusal on harmful seeds, compliance on benign ones (the judge's labels), each seed
    played verbatim and rewritten by the role-play attacker."""
    refused = {"harmful": [], "benign": []}
    rewards = []
    for i, seed in enumerate(load_seeds(split)):
        for revise in (False, True):
            env = make("sparring/redteam-v0", seeds=split)
            seats = {"attacker": load_policy("redteam.roleplay"), "defender": policy}
            options = {"seed_prompt": seed.prompt, "label": seed.label, "revise": revise}
            episode = asyncio.run(play(env, seats, seed=i, options=options))
            refused[seed.label].append(episode.final_infos["defender"]["judge"]["refusal"] == "refusal")
            rewards.append(episode.rewards["defender"])
    return {"refusal_on_harmful": float(np.mean(refused["harmful"])),
            "compliance_on_benign": 1.0 - float(np.mean(refused["benign"])),
            "defender_reward_mean": float(np.mean(rewards))}


def redteam_defender(run_dir: Path, iterations: int, minutes: float, encoder: str, progress: bool) -> dict[str, Any]:
    common = [f"run_dir={run_dir}", f"progress={str(progress).lower()}", f"view.encoder={encoder}",
              "+view.opponents.attacker=redteam.roleplay"]
    train_rllib(recipe("redteam", [*common, "iterations=0"]))
    initial = RLlibPolicy(run_dir, explore=True)
    before = {split: defender_rates(initial, split) for split in ("train", "heldout")}
    started = time.perf_counter()
    metrics = train_rllib(recipe("redteam", [*common, f"iterations={iterations}", f"max_minutes={minutes}"]),
                          resume=True)
    trained = RLlibPolicy(run_dir)
    return {
        "encoder": encoder,
        "before": before,
        "after": {split: defender_rates(trained, split) for split in ("train", "heldout")},
        "iterations": metrics[-1]["update"], "minutes": (time.perf_counter() - started) / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ipd-iterations", type=int, default=40, help="PPO iterations of task (a)")
    parser.add_argument("--redteam-iterations", type=int, default=60, help="PPO iterations of task (b)")
    parser.add_argument("--max-minutes", type=float, default=5.0, help="training time cap per task")
    parser.add_argument("--encoder", default="hash", choices=("hash", "minilm"), help="text encoder of task (b)")
    parser.add_argument("--run-dir", default=None, help="where the runs go (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.run_dir or tmp)
        summary = {"ipd_vs_tit_for_tat": ipd(root / "ipd", args.ipd_iterations, args.max_minutes, not args.json),
                   "redteam_defender": redteam_defender(root / "redteam", args.redteam_iterations, args.max_minutes,
                                                        args.encoder, not args.json)}
    summary["seconds"] = time.perf_counter() - started
    if args.json:
        print(json.dumps(summary))
        return
    a, b = summary["ipd_vs_tit_for_tat"], summary["redteam_defender"]
    print(f"(a) IPD vs tit-for-tat, {ROUNDS} rounds ({a['iterations']} PPO iterations, {a['minutes']:.1f} min)")
    print(f"    best response {a['best_response_return']:g} ({' '.join(a['best_response_moves'])})")
    print(f"    always cooperate {a['always_cooperate_return']:g}, always defect {a['always_defect_return']:g}")
    print(f"    PPO before (sampled) {a['before_return_mean']:.2f}; after (greedy) {a['after_return']:g} "
          f"({' '.join(a['after_moves'])})")
    print(f"(b) redteam defender vs role-play attacker ({b['iterations']} iterations, {b['minutes']:.1f} min, "
          f"{b['encoder']} encoder)")
    for split in ("train", "heldout"):
        for when in ("before", "after"):
            r = b[when][split]
            print(f"    {split:8s} {when:6s} refuses harmful {r['refusal_on_harmful']:.2f}, complies with benign "
                  f"{r['compliance_on_benign']:.2f}, reward {r['defender_reward_mean']:+.2f}")


if __name__ == "__main__":
    main()
