"""Inverse RL on negotiation-v0: reward recovery and imitation from text demonstrations.

1. The experts: softmax-rational negotiators (``negotiation.softmax``, temperature T) in both
   seats. Their games are recorded with the suite's recorder, one row per move.
2. Each row's observation text is read by an encoder: ``minilm`` (all-MiniLM-L6-v2 sentence
   embeddings of the whole observation, up to 512 tokens), ``llm`` (the shipped tiny LLM's own
   features of it: its last-token and mean hidden states) or ``position`` (the observation
   parsed back into numbers, :func:`~sparring.envs.negotiation.position_features`: an exact
   reader, so the gap is what a text encoder loses). Moves are indices of
   :class:`~sparring.envs.negotiation.MoveIndex`, with each observation's legal moves as a mask.
3. MAMQL, independent IQ-Learn and behaviour cloning learn from the first N games, with the
   same settings (linear critics, λ = 1/T, no χ² term). In an alternating game MAMQL's
   marginalisation is over nothing (nobody else moves when an agent moves), so its numbers
   equal IQ-Learn's; both are printed to show it.
4. Each learner is scored on things it was not trained on:
   - **reward recovery**: accepting and walking away both end the game, so r̄(s, accept) −
     r̄(s, walk away) = Q̄(s, accept) − Q̄(s, walk away) is free of potential shaping, and its true
     value is what the offer on the table is worth to the player minus the no-deal reward. The
     Pearson correlation of the two over each agent's states of held-out expert games with an
     offer on the table, averaged over the agents (BC's estimate: log π(accept) − log π(walk
     away); null where an estimate is constant);
   - **imitation**: the true reward of the learned policy seated against an expert, in both
     seats, mean ± std over evaluation seeds (blocks of games). The expert's own and a
     uniformly random legal player's are measured alike.

5. **LLM negotiators** (``--parts llm``), all from the shipped tiny model, through the suite's
   own recipes (run directories under ``--run-dir``):
   - **BC**: supervised fine-tuning on the expert moves of the largest demonstration set
     (``train=sft``), which also teaches the model the game's grammar;
   - **IRL → RL**: from the BC model, self-play policy gradient (``train=negotiation``) on the
     reward MAMQL recovered from the same demonstrations (``reward_model=``, read with
     ``--llm-encoder``), against a league of itself and the expert, with the BC anchor on the
     demonstrations kept;
   - **RL on the true reward**, the same from the same start (a reference: what the recovered
     reward could at best give);
   each scored as in 4 (true reward against an expert, both seats, mean ± std over evaluation
   seeds), with the share of its moves the game rejected.

    python benchmarks/mamql_negotiation.py                    # about half an hour on 2 CPU cores
    python benchmarks/mamql_negotiation.py --encoders position --demos 50,200 --parts recovery
    python benchmarks/mamql_negotiation.py --parts llm        # the LLM negotiators alone
    python benchmarks/mamql_negotiation.py --json             # last line: one JSON object
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from sparring.agents.base import Action, Policy
from sparring.agents.learners import train
from sparring.agents.learners.mamql import METHODS, Demonstrations, IRLConfig, build_learner
from sparring.agents.learners.mamql_run import TextIRLPolicy, cached, llm_features
from sparring.agents.llm import LLMPolicy
from sparring.agents.rollout import play_many
from sparring.agents.scripted.negotiation import SoftmaxNegotiator
from sparring.agents.trajectories import record_transitions, write_transitions
from sparring.arenas.evaluate import mean_std
from sparring.envs import make
from sparring.envs.negotiation import MoveIndex, parallel_env, position_features, read_position
from sparring.envs.parsing import answer_in_format
from sparring.pool import SamplingParams, build_pool, serve_model

GAME = {"id": "sparring/negotiation-v0"}
SEATS = ("player_0", "player_1")


class RandomLegal(Policy):
    """A uniformly random legal move (the floor of the imitation scores)."""

    name = "random"

    def __init__(self, moves: MoveIndex):
        self.moves, self.rng = moves, np.random.default_rng(0)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    async def act(self, agent, observation):
        legal = np.flatnonzero(self.moves.legal(observation["text"]))
        return Action(answer_in_format(observation, "random", self.moves.texts()[int(self.rng.choice(legal))]))


def imitation(make_player, temperature: float, seeds: int, games: int, base: int) -> dict[str, float]:
    """The player's mean true reward against an expert, both seats; mean ± std over seeds."""
    scores = []
    for k in range(seeds):
        total, count = 0.0, 0
        for seat in ("player_0", "player_1"):
            seats = {a: SoftmaxNegotiator(temperature) for a in ("player_0", "player_1")}
            seats[seat] = make_player()
            start = base + 1000 * k + (500 if seat == "player_1" else 0)
            rows = record_transitions(parallel_env, seats, range(start, start + games))
            total += sum(t.reward for t in rows if t.agent == seat)
            count += games
        scores.append(total / count)
    return dict(zip(("mean", "std"), mean_std(scores)))


def llm_imitation(model: Path, temperature: float, seeds: int, games: int, base: int) -> dict[str, float]:
    """An LLM negotiator's true reward against an expert, scored as :func:`imitation` scores
    (same game seeds), its games played at once through one pool; plus the share of its
    moves the game rejected."""
    pool = build_pool()
    try:
        policy = serve_model(pool, str(model))
        sampling = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=96)
        scores, invalid, moves = [], 0, 0
        for k in range(seeds):
            total = 0.0
            for seat in SEATS:
                start = base + 1000 * k + (500 if seat == "player_1" else 0)

                def seats(_: int, seat: str = seat) -> dict[str, Policy]:
                    table = {a: SoftmaxNegotiator(temperature) for a in SEATS}
                    table[seat] = LLMPolicy(policy, pool=pool, sampling=sampling, name="llm")
                    return table

                episodes = asyncio.run(play_many(lambda: make(GAME["id"]), seats, range(start, start + games),
                                                 policy_seeds=range(start, start + games)))
                total += sum(e.rewards[seat] for e in episodes)
                mine = [t for e in episodes for t in e.turns if t.agent == seat]
                invalid += sum(t.invalid is not None for t in mine)
                moves += len(mine)
            scores.append(total / (2 * games))
    finally:
        asyncio.run(pool.aclose())
    return dict(zip(("mean", "std"), mean_std(scores))) | {"invalid": invalid / max(moves, 1)}


def llm_negotiators(rows, args, work: Path, eval_base: int) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """BC, IRL → RL and true-reward RL negotiators from the tiny model (see the module docstring):
    their scores, and each training run's metrics per update."""
    demos = work / "demos.jsonl"
    first = list(dict.fromkeys(t.episode for t in rows))[: args.llm_demos]
    write_transitions(demos, [t for t in rows if t.episode in set(first)])
    encoder = {"minilm": "minilm", "llm": "llm"}.get(args.llm_encoder, "sparring.envs.negotiation:position_features")
    quiet = {"tensorboard": False, "plot": False, "progress_every_s": 3600}
    train({"trainer": "mamql", "env": GAME, "demonstrations": str(demos), "method": "mamql", "encoder": encoder,
           "irl": {"gamma": 0.9, "lam": 1.0 / args.temperature, "chi2_alpha": None, "hidden": [], "lr": 0.03},
           "updates": 1, "steps_per_update": args.steps, "eval_every": 0, "seed": args.seed,
           "run_dir": str(work / "irl"), **quiet})
    per_update = min(20, args.sft_steps)
    bc = train({"trainer": "sft", "env": GAME, "demonstrations": str(demos), "agent": {"max_new_tokens": 96},
                "learner": {"algorithm": "sft", "lr": 1e-3, "batch_size": 16, "steps_per_update": per_update},
                "updates": -(-args.sft_steps // per_update), "seed": args.seed, "run_dir": str(work / "bc"), **quiet})
    expert = {"policy": "negotiation.softmax", "temperature": args.temperature}

    curves: dict[str, list[dict]] = {"bc": [{"update": r["update"], "nll": r["nll/train"]} for r in bc]}

    def rl(name: str, reward_model: str | None) -> Path:
        rows = train({"trainer": "selfplay", "env": GAME, "agent": {"model": str(work / "bc"), "max_new_tokens": 96},
               "reward_model": reward_model, "demonstrations": str(demos),
               "seats": {a: ["learner", expert] for a in SEATS},
               "learner": {"lr": args.rl_lr, "kl_coef": 0.01},
               "updates": args.rl_updates, "games_per_update": args.rl_games, "seed": args.seed,
               "run_dir": str(work / name), "checkpoint_every": args.rl_updates, **quiet})
        curves[name] = [{k: r[k] for k in r if k == "update" or k.startswith(("reward/", "game_reward/", "invalid/"))}
                        for r in rows]
        return work / name

    players = {"bc": work / "bc", "irl_rl": rl("irl_rl", str(work / "irl")), "true_rl": rl("true_rl", None)}
    out = {}
    for name, model in players.items():
        out[name] = llm_imitation(model, args.temperature, args.eval_seeds, args.eval_games, eval_base)
        if not args.json:
            r = out[name]
            print(f"LLM {name:8s} true reward vs expert {r['mean']:.2f} ± {r['std']:.2f}  "
                  f"rejected moves {r['invalid']:.2f}", flush=True)
    return out, curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demos", default="50,200,400", help="demonstration counts (games), comma-separated")
    parser.add_argument("--encoders", default="minilm,llm,position", help="minilm, llm and/or position")
    parser.add_argument("--temperature", type=float, default=2.0, help="the experts' softmax temperature T")
    parser.add_argument("--steps", type=int, default=6000, help="updates per learner")
    parser.add_argument("--heldout-games", type=int, default=150, help="expert games whose states score recovery")
    parser.add_argument("--eval-seeds", type=int, default=3)
    parser.add_argument("--eval-games", type=int, default=30, help="games per seat and evaluation seed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="recovery,llm", help="recovery and/or llm (the LLM negotiators)")
    parser.add_argument("--llm-demos", type=int, default=None, help="demonstration games the LLMs learn from "
                        "(default: the largest of --demos)")
    parser.add_argument("--llm-encoder", default="position", help="how the reward the LLM trains on reads text: "
                        "position (the exact reader), minilm or llm")
    parser.add_argument("--sft-steps", type=int, default=160, help="BC optimiser steps (16 moves each; in "
                        "updates of 20, rounded up)")
    parser.add_argument("--rl-updates", type=int, default=12, help="policy-gradient updates after BC")
    parser.add_argument("--rl-games", type=int, default=16, help="games per update")
    parser.add_argument("--rl-lr", type=float, default=1e-4)
    parser.add_argument("--run-dir", default=None, help="keep the LLM runs here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.demos.split(","))
    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    unknown = set(encoders) - {"minilm", "llm", "position"}
    if unknown:
        parser.error(f"unknown encoder(s) {sorted(unknown)}: use minilm, llm and/or position")
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"recovery", "llm"}:
        parser.error(f"--parts={args.parts!r}: use recovery and/or llm")
    if args.llm_encoder not in ("minilm", "llm", "position"):
        parser.error(f"--llm-encoder={args.llm_encoder!r}: use position, minilm or llm")
    args.llm_demos = args.llm_demos or counts[-1]
    started = time.time()
    moves = MoveIndex()
    experts = {a: SoftmaxNegotiator(args.temperature) for a in ("player_0", "player_1")}
    rows = record_transitions(parallel_env, experts, range(args.seed, args.seed + max(counts[-1], args.llm_demos)))
    held = record_transitions(parallel_env, experts, range(10**6, 10**6 + args.heldout_games))
    states = {a: [t.obs for t in held if t.agent == a and read_position(t.obs).offered is not None]
              for a in experts}
    worth = {a: np.array([float(np.dot(p.values, p.offered)) - p.no_deal for p in map(read_position, texts)])
             for a, texts in states.items()}
    legal = {a: np.stack([moves.legal(s) for s in texts]) for a, texts in states.items()}
    config = IRLConfig(hidden=(), lam=1.0 / args.temperature, chi2_alpha=None, lr=0.03, steps=args.steps,
                       seed=args.seed)
    eval_base = 2 * 10**6

    result = {"demos": counts, "temperature": args.temperature, "steps": args.steps,
              "heldout_states": {a: len(texts) for a, texts in states.items()}, "encoders": {}}
    result["expert"] = imitation(lambda: SoftmaxNegotiator(args.temperature), args.temperature, args.eval_seeds,
                                 args.eval_games, eval_base)
    result["random"] = imitation(lambda: RandomLegal(moves), args.temperature, args.eval_seeds, args.eval_games,
                                 eval_base)
    if not args.json:
        print(f"expert vs expert {result['expert']['mean']:.2f} ± {result['expert']['std']:.2f}; "
              f"random vs expert {result['random']['mean']:.2f} ± {result['random']['std']:.2f}", flush=True)
    for encoder in encoders if "recovery" in parts else ():
        if encoder == "minilm":
            from sparring.judges.embedding import minilm_embedder

            embed = cached(minilm_embedder(max_tokens=512))
        elif encoder == "llm":
            embed = cached(llm_features("tiny"))
        else:
            embed = position_features
        everything = Demonstrations.from_turns(rows, embed, moves)
        features = {a: embed(texts) for a, texts in states.items()}
        pearson = {m: [] for m in METHODS}
        returns = {m: [] for m in METHODS}
        for count in counts:
            demos = everything.episodes(count)
            for method in METHODS:
                learner = build_learner(method, config, demos, {a: len(moves) for a in demos.agents}).fit(demos)
                found = []
                for agent in demos.agents:  # each agent's critic at its own states
                    obs = {a: features[agent] for a in demos.agents}
                    masks = {a: legal[agent] for a in demos.agents}
                    if method == "bc":
                        p = np.clip(learner.policies(obs, masks)[agent], 1e-12, None)
                        gain = np.log(p[:, moves.accept]) - np.log(p[:, moves.walk])
                    else:
                        q = learner.marginal_q(obs, masks)[agent]
                        gain = q[:, moves.accept] - q[:, moves.walk]
                    found.append(float(np.corrcoef(gain, worth[agent])[0, 1]) if np.std(gain) > 0 else None)
                pearson[method].append(None if None in found else float(np.mean(found)))
                returns[method].append(imitation(lambda learner=learner: TextIRLPolicy(learner, embed, moves),
                                                 args.temperature, args.eval_seeds, args.eval_games, eval_base))
                if not args.json:
                    r = returns[method][-1]
                    shown = "  n/a " if pearson[method][-1] is None else f"{pearson[method][-1]:6.3f}"
                    print(f"{encoder:8s} {count:4d} games  {method:9s} accept-vs-walk Pearson "
                          f"{shown}  true reward vs expert {r['mean']:.2f} ± {r['std']:.2f}",
                          flush=True)
        result["encoders"][encoder] = {
            "pearson": {m: pearson[m][-1] for m in METHODS}, "pearson_by_demos": pearson,
            "returns": {m: returns[m][-1] for m in METHODS}, "returns_by_demos": returns,
            "rows": len(everything), "skipped": everything.skipped,
        }
    if "llm" in parts:
        with tempfile.TemporaryDirectory() as scratch:
            work = Path(args.run_dir or scratch)
            result["llm"], result["llm_training"] = llm_negotiators(rows, args, work, eval_base)
        result["llm_settings"] = {"demos": args.llm_demos, "encoder": args.llm_encoder, "sft_steps": args.sft_steps,
                                  "rl_updates": args.rl_updates, "rl_games": args.rl_games}
    result["seconds"] = round(time.time() - started, 1)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
