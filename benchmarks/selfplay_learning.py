"""Self-play learning on CPU: does the defender get better by playing itself?

1. Evaluate the shipped tiny model on held-out seeds against the scripted opponents (defending
   against every scripted attacker, attacking every scripted defender), 3 evaluation seeds.
2. Train it by self-play (REINFORCE++, one model in both roles, the rule judge) for a bounded
   time on the training seeds.
3. Evaluate the trained model exactly as in 1.

It prints a before/after table (mean ± std over the evaluation seeds) and the learning curve's
path. The claim checked: the defender's mean reward rises by more than the run-to-run noise.

    python benchmarks/selfplay_learning.py                   # ~20 minutes on 2 CPU cores
    python benchmarks/selfplay_learning.py --minutes 3       # a quick look
    python benchmarks/selfplay_learning.py --json            # last line: one JSON object
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from sparring.agents.learners import SelfPlayConfig, train
from sparring.arenas.evaluate import EvalConfig, evaluate

ROWS = ("defender_reward", "safety", "compliance", "defender_valid_format", "attacker_reward", "attacker_success",
        "attacker_valid_format", "self_bleu_diversity", "embedding_diversity")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training time budget")
    parser.add_argument("--games", type=int, default=64, help="evaluation games per opponent and seed")
    parser.add_argument("--games-per-update", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--kl-coef", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None, help="keep the run here (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    eval_cfg = EvalConfig(model="tiny", games=args.games)
    before = evaluate(eval_cfg).summary()

    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(args.run_dir or Path(scratch) / "run")
        cfg = SelfPlayConfig.from_dict({
            "env": {"id": "sparring/redteam-v0", "seeds": "train"},
            "learner": {"lr": args.lr, "kl_coef": args.kl_coef},
            "updates": 10_000, "max_minutes": args.minutes, "games_per_update": args.games_per_update,
            "seed": args.seed, "run_dir": str(run_dir), "checkpoint_every": 25, "tensorboard": False,
        })
        metrics = train(cfg)
        after = evaluate(EvalConfig(model=str(run_dir), games=args.games)).summary()
        curve = run_dir / "learning_curve.png"
        kept_curve = Path(args.run_dir) / "learning_curve.png" if args.run_dir else None

        print(f"\nself-play: {len(metrics)} updates of {args.games_per_update} games in "
              f"{metrics[-1]['elapsed_min']:.1f} min; evaluation: {args.games} games per opponent x 3 seeds, "
              "held-out seeds, scripted opponents")
        print(f"{'metric':<24}{'before':>18}{'after':>18}")
        for key in ROWS:
            if key in before and key in after:
                b, a = before[key], after[key]
                print(f"{key:<24}{b[0]:>+10.3f} ± {b[1]:.3f}{a[0]:>+10.3f} ± {a[1]:.3f}")
        print("learning curve:", kept_curve or "(temporary; pass --run-dir to keep it)")
        print("reward of trained moves per update (defender):",
              " ".join(f"{m.get('reward/defender', float('nan')):+.2f}" for m in metrics[:: max(1, len(metrics) // 12)]))
        del curve

    minutes = (time.perf_counter() - started) / 60
    summary = {
        "before_mean": before["defender_reward"][0], "before_std": before["defender_reward"][1],
        "after_mean": after["defender_reward"][0], "after_std": after["defender_reward"][1],
        "minutes": minutes, "train_minutes": metrics[-1]["elapsed_min"], "updates": len(metrics),
        "before": {k: v[0] for k, v in before.items()}, "after": {k: v[0] for k, v in after.items()},
    }
    print(f"defender reward: {summary['before_mean']:+.3f} ± {summary['before_std']:.3f} -> "
          f"{summary['after_mean']:+.3f} ± {summary['after_std']:.3f}  ({minutes:.1f} min in all)")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
