"""Router-R1 on CPU: does a trained router trade exact match against cost?

1. The baselines on the held-out synthetic questions, against the scripted experts (small,
   medium, large: rising skill and price): always the cheapest, always the strongest, a
   random expert, and the oracle (the cheapest expert that knows the answer).
2. The shipped tiny model trained as the router by self-play policy gradient (REINFORCE++;
   the experts scripted and frozen) on the training questions, once per cost coefficient α of
   the sweep; the run at ``--alpha`` is the headline router.
3. Every router is scored on the held-out questions (none of them trained on) as mean ± std
   over evaluation seeds: EM and cost (dollars per question, from the experts' prices).

The bar: the router beats the always-strongest expert on cost at equal or better EM, or the
cheapest on EM at equal or lower cost, beyond the evaluation-seed spread (2σ). It draws the
cost–EM plane (baselines and sweep) as a Pareto PNG, and measures router moves per second
with 64 concurrent games through the pool against one game at a time.

    python benchmarks/router_learning.py                # about 18 minutes on 2 CPU cores
    python benchmarks/router_learning.py --minutes 1 --alphas 0.5   # a quick look
    python benchmarks/router_learning.py --json         # last line: one JSON object
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from sparring.agents import load_policy, play_many
from sparring.agents.learners import SelfPlayConfig, train
from sparring.agents.llm import LLMPolicy
from sparring.arenas.routing import RouterEvalConfig, evaluate_router
from sparring.envs import make
from sparring.envs.router import STOP
from sparring.pool import SamplingParams, build_pool, serve_model

BASELINES = {"cheapest": "router.cheapest", "strongest": "router.strongest", "random": "router.random",
             "oracle": "router.oracle"}
EXPERT_SEATS = ("expert_small", "expert_medium", "expert_large")


def scored(router: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return evaluate_router(RouterEvalConfig(router=router, game={"data": "heldout"}, games=args.games,
                                            eval_seeds=args.eval_seeds))


def train_router(run: Path, alpha: float, args: argparse.Namespace) -> int:
    return len(train(SelfPlayConfig.from_dict({
        "env": {"id": "sparring/router-v0", "data": "train", "cost_coef": alpha},
        "agent": {"max_new_tokens": 64, "stop": list(STOP)},
        "seats": dict.fromkeys(EXPERT_SEATS, "router.expert"), "learn_roles": ["router"],
        "learner": {"lr": args.lr, "kl_coef": args.kl_coef},
        "updates": 100_000, "max_minutes": args.minutes, "games_per_update": args.games_per_update,
        "seed": args.seed, "run_dir": str(run), "checkpoint_every": 1000, "tensorboard": False,
    })))


def throughput(args: argparse.Namespace) -> dict[str, float]:
    """Router moves per second of the tiny model, 64 games at once through the pool and one at a time."""
    pool = build_pool()
    name = serve_model(pool, "tiny")
    sampling = SamplingParams(temperature=1.0, top_k=0, max_new_tokens=64, stop=STOP)

    def seats(_):
        return {"router": LLMPolicy(name, pool=pool, sampling=sampling)} | {
            a: load_policy("router.expert") for a in EXPERT_SEATS}

    out = {}
    try:
        for label, games, concurrency in (("pool_64", 64, 64), ("one_at_a_time", args.serial_games, 1)):
            started = time.perf_counter()
            episodes = asyncio.run(play_many(lambda: make("sparring/router-v0", data="heldout"), seats,
                                             list(range(games)), concurrency))
            seconds = time.perf_counter() - started
            out[label] = sum(t.agent == "router" for e in episodes for t in e.turns) / seconds
    finally:
        asyncio.run(pool.aclose())
    out["ratio"] = out["pool_64"] / out["one_at_a_time"]
    return out


def point(result: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {"em": result["em"]["mean"], "em_std": result["em"]["std"], "cost": result["cost"]["mean"],
            "cost_std": result["cost"]["std"], "valid_format": result["valid_format"]["mean"],
            "calls": result["calls"]["mean"]}


def meets_bar(router: dict[str, float], cheapest: dict[str, float], strongest: dict[str, float]) -> dict[str, bool]:
    def sigma(*points: dict[str, float], key: str) -> float:
        return 2 * max(p[f"{key}_std"] for p in points)

    cheaper = (strongest["cost"] - router["cost"] > sigma(router, strongest, key="cost")
               and router["em"] >= strongest["em"] - sigma(router, strongest, key="em"))
    better = (router["em"] - cheapest["em"] > sigma(router, cheapest, key="em")
              and router["cost"] <= cheapest["cost"] + sigma(router, cheapest, key="cost"))
    return {"cheaper_than_strongest": cheaper, "better_than_cheapest": better, "all": cheaper or better}


def pareto_png(path: Path, baselines: dict[str, dict], sweep: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, p in baselines.items():
        ax.errorbar(p["cost"] * 1e6, p["em"], xerr=p["cost_std"] * 1e6, yerr=p["em_std"], fmt="s", capsize=3,
                    label=name)
    if sweep:
        xs, ys = [p["cost"] * 1e6 for p in sweep], [p["em"] for p in sweep]
        ax.plot(xs, ys, "o-", color="black", label="trained router (α sweep)")
        for p, x, y in zip(sweep, xs, ys):
            ax.annotate(f"α={p['alpha']:g}", (x, y), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("cost per question (micro-dollars)")
    ax.set_ylabel("exact match (held-out)")
    ax.set_title("router-v0: cost vs EM")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alphas", default="0,0.5,0.9", help="the cost coefficients of the sweep")
    parser.add_argument("--alpha", type=float, default=0.5, help="the headline router's α (one of --alphas)")
    parser.add_argument("--minutes", type=float, default=4.5, help="training time per router")
    parser.add_argument("--games-per-update", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--kl-coef", type=float, default=0.01)
    parser.add_argument("--games", type=int, default=64, help="held-out questions per evaluation seed")
    parser.add_argument("--eval-seeds", default="0,1,2")
    parser.add_argument("--serial-games", type=int, default=8, help="games played one at a time for throughput")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs/router_learning", help="the runs and the Pareto PNG go here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.eval_seeds = tuple(int(s) for s in args.eval_seeds.split(","))
    alphas = [float(a) for a in args.alphas.split(",") if a]
    if args.alpha not in alphas:
        parser.error(f"--alpha {args.alpha} is not one of --alphas {alphas}")
    started = time.perf_counter()
    root = Path(args.run_dir)
    root.mkdir(parents=True, exist_ok=True)

    baselines = {name: point(scored(spec, args)) for name, spec in BASELINES.items()}
    untrained = point(scored("tiny", args))
    sweep, updates = [], {}
    for alpha in alphas:
        run = root / f"router-alpha{alpha:g}"
        updates[alpha] = train_router(run, alpha, args)
        sweep.append({"alpha": alpha, **point(scored(str(run), args))})
    router = next(p for p in sweep if p["alpha"] == args.alpha)
    speed = throughput(args)
    pareto = root / "pareto.png"
    pareto_png(pareto, baselines, sweep)

    summary = {
        "router": {k: router[k] for k in ("em", "em_std", "cost", "cost_std", "valid_format", "calls")},
        "baselines": baselines, "untrained": untrained, "sweep": sweep, "alpha": args.alpha,
        "bar": meets_bar(router, baselines["cheapest"], baselines["strongest"]),
        "updates": {f"{a:g}": n for a, n in updates.items()}, "throughput_router_moves_per_s": speed,
        "pareto_png": str(pareto), "train_minutes": args.minutes, "minutes": (time.perf_counter() - started) / 60,
    }
    print(f"\nheld-out questions; mean ± std over evaluation seeds {list(args.eval_seeds)}; "
          f"{args.minutes:g} min of training per router")
    print(f"{'router':<22}{'EM':>16}{'cost (µ$)':>20}{'valid':>8}{'calls':>7}")
    rows = {**baselines, "tiny (untrained)": untrained, **{f"trained α={p['alpha']:g}": p for p in sweep}}
    for name, p in rows.items():
        print(f"{name:<22}{p['em']:>9.3f} ± {p['em_std']:.3f}{p['cost'] * 1e6:>12.2f} ± {p['cost_std'] * 1e6:.2f}"
              f"{p['valid_format']:>8.2f}{p['calls']:>7.2f}")
    print(f"router moves/s: {speed['pool_64']:.1f} with 64 games through the pool, {speed['one_at_a_time']:.1f} "
          f"one at a time ({speed['ratio']:.1f}x)")
    print(f"bar (α={args.alpha:g}): {summary['bar']}; Pareto plot: {pareto}; in all {summary['minutes']:.1f} min")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
