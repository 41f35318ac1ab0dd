"""Inverse RL on negotiation-v0: reward recovery and imitation from text demonstrations.

1. The experts: softmax-rational negotiators (``negotiation.softmax``, temperature T) in both
   seats. Their games are recorded with the suite's recorder, one row per move.
2. Each row's observation text is read by an encoder: ``minilm`` (all-MiniLM-L6-v2 sentence
   embeddings of the whole observation, up to 512 tokens) or ``position`` (the observation parsed back into numbers,
   :func:`~sparring.envs.negotiation.position_features`: an exact reader, so the gap between
   the two is what the text encoder loses). Moves are indices of
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

Not measured here: an LLM negotiator trained by RL on the recovered reward against one trained
by BC.

    python benchmarks/mamql_negotiation.py                    # a few minutes on 2 CPU cores
    python benchmarks/mamql_negotiation.py --encoders position --demos 50,200
    python benchmarks/mamql_negotiation.py --json             # last line: one JSON object
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sparring.agents.base import Action, Policy
from sparring.agents.learners.mamql import METHODS, Demonstrations, IRLConfig, build_learner
from sparring.agents.learners.mamql_run import TextIRLPolicy, cached
from sparring.agents.scripted.negotiation import SoftmaxNegotiator
from sparring.agents.trajectories import record_transitions
from sparring.envs.negotiation import MoveIndex, parallel_env, position_features, read_position
from sparring.envs.parsing import answer_in_format


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
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demos", default="50,200,400", help="demonstration counts (games), comma-separated")
    parser.add_argument("--encoders", default="minilm,position", help="minilm and/or position")
    parser.add_argument("--temperature", type=float, default=2.0, help="the experts' softmax temperature T")
    parser.add_argument("--steps", type=int, default=6000, help="updates per learner")
    parser.add_argument("--heldout-games", type=int, default=150, help="expert games whose states score recovery")
    parser.add_argument("--eval-seeds", type=int, default=3)
    parser.add_argument("--eval-games", type=int, default=30, help="games per seat and evaluation seed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.demos.split(","))
    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    unknown = set(encoders) - {"minilm", "position"}
    if unknown:
        parser.error(f"unknown encoder(s) {sorted(unknown)}: use minilm and/or position")
    started = time.time()
    moves = MoveIndex()
    experts = {a: SoftmaxNegotiator(args.temperature) for a in ("player_0", "player_1")}
    rows = record_transitions(parallel_env, experts, range(args.seed, args.seed + counts[-1]))
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
    for encoder in encoders:
        if encoder == "minilm":
            from sparring.judges.embedding import minilm_embedder

            embed = cached(minilm_embedder(max_tokens=512))
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
    result["seconds"] = round(time.time() - started, 1)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
