"""RainbowPlus's multi-element archive vs classic single-elite MAP-Elites, on one budget.

Both searches run with the same seeds, mutator, target, fitness judge and number of
iterations; only the insertion rule differs. Each archive is then scored with an evaluation
judge other than the fitness (``--eval-judge``, default the keyword judge): ASR (share of
seeds with an archived prompt judged unsafe, and share of archived prompts judged unsafe),
coverage, QD-score, unique prompts, Diverse-Score (1 - self-BLEU) and MiniLM embedding
diversity. It also measures how many candidates per second the search judges with
``num_mutations`` 10 and 64, through the batching pool against one game at a time.

The mutator is the scripted ``rainbow.style`` (four templates per attack style, with the opening of the request reworded) and the
target the shipped tiny model, so the run needs no network and no GPU.

    python benchmarks/qd_compare.py                  # a few minutes on 2 CPU cores
    python benchmarks/qd_compare.py --json           # last line: one JSON object
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from sparring.agents.learners import RainbowRunConfig, train
from sparring.agents.learners.rainbow import load_archive
from sparring.envs.rainbow import RainbowGame
from sparring.envs.rainbow.metrics import archive_metrics
from sparring.judges import judge_named
from sparring.judges.embedding import minilm_embedder

KEYS = ("unique_prompts", "coverage", "qd_score", "diverse_score", "embedding_diversity", "asr", "prompt_asr")


def search(root: Path, name: str, args: argparse.Namespace, *, updates: int, num_mutations: int,
           concurrency: int, single_elite: bool = False) -> tuple[Path, list[dict]]:
    run = root / name
    cfg = RainbowRunConfig.from_dict({
        "env": {"id": "sparring/rainbow-v0", "judge": args.judge, "single_elite": single_elite,
                "fitness_threshold": args.fitness_threshold, "sim_threshold": args.sim_threshold},
        "mutator": args.mutator, "target": args.target, "num_mutations": num_mutations,
        "games_per_update": num_mutations * args.in_flight, "updates": updates, "concurrency": concurrency,
        "seed": args.seed, "run_dir": str(run), "checkpoint_every": 1000, "tensorboard": False, "plot": False,
    })
    return run, train(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200, help="iterations per search")
    parser.add_argument("--num-mutations", type=int, default=10)
    parser.add_argument("--in-flight", type=int, default=4, help="iterations per update (batched together)")
    parser.add_argument("--mutator", default="rainbow.style")
    parser.add_argument("--target", default="reference", help="reference: the shipped tiny model")
    parser.add_argument("--judge", default="minilm", help="the fitness judge")
    parser.add_argument("--eval-judge", default="rules", help="the judge ASR is measured with")
    parser.add_argument("--fitness-threshold", type=float, default=0.6)
    parser.add_argument("--sim-threshold", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--throughput-updates", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    updates = max(1, args.iterations // args.in_flight)
    evaluation = judge_named(args.eval_judge)
    seeds = len(RainbowGame(judge=judge_named(args.judge)).seeds)
    out: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for name, single in (("multi", False), ("single", True)):
            run, rows = search(root, name, args, updates=updates, num_mutations=args.num_mutations,
                               concurrency=64, single_elite=single)
            metrics = archive_metrics(load_archive(run), evaluation, minilm_embedder(), seeds=min(seeds, updates * args.in_flight))
            out[name] = {k: metrics[k] for k in KEYS} | {"candidates": sum(r["candidates"] for r in rows),
                                                          "filtered": sum(r["filtered"] for r in rows)}
        throughput = {}
        for n in (10, 64):
            for mode, concurrency in (("pool", 64), ("one_at_a_time", 1)):
                _, rows = search(root, f"speed-{n}-{mode}", args, updates=args.throughput_updates,
                                 num_mutations=n, concurrency=concurrency)
                throughput[f"{mode}_{n}"] = float(np.mean([r["candidates_per_s"] for r in rows]))
            throughput[f"ratio_{n}"] = throughput[f"pool_{n}"] / throughput[f"one_at_a_time_{n}"]
        out["throughput_candidates_per_s"] = throughput
    ratio = out["multi"]["unique_prompts"] / max(out["single"]["unique_prompts"], 1)
    out |= {"unique_prompt_ratio": ratio, "iterations": updates * args.in_flight, "num_mutations": args.num_mutations,
            "fitness_judge": args.judge, "eval_judge": args.eval_judge, "minutes": (time.perf_counter() - started) / 60}
    print(f"{'metric':<22}{'multi-element':>16}{'single elite':>16}")
    for key in KEYS:
        print(f"{key:<22}{out['multi'][key]:>16.3f}{out['single'][key]:>16.3f}")
    print(f"unique prompts, multi / single: {ratio:.1f}x")
    for n in (10, 64):
        print(f"num_mutations={n}: {throughput[f'pool_{n}']:.1f} candidates/s through the pool, "
              f"{throughput[f'one_at_a_time_{n}']:.1f} one game at a time ({throughput[f'ratio_{n}']:.1f}x)")
    print(f"in all {out['minutes']:.1f} min")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
