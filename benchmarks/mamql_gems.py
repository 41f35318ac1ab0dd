"""MAMQL on Gems: imitation and reward recovery against demonstration count.

1. The experts: both agents of a small fixed Gems layout play the Boltzmann equilibrium of the
   true rewards (``gems.expert``, solved exactly). Their games are recorded as demonstrations
   with the suite's recorder.
2. For each demonstration count, MAMQL, independent IQ-Learn and behaviour cloning learn from
   the first N games, with the same settings.
3. Each learner is scored on things it was not trained on:
   - the true return of its policies: exact, over the layout's tables, from every start state,
     over the game's horizon;
   - the Pearson correlation between its recovered reward r̄ᵢ(s, aᵢ) and the true reward
     (marginalised over the expert partner's policy), over the visited (s, aᵢ) pairs of the
     largest demonstration set, averaged over both agents. BC's estimate is log πᵢ(aᵢ|s).
     Demonstrations determine a reward only up to potential shaping Φ(s) − γ E[Φ(s′)], so the
     correlation is reported twice: raw (``pearson``), and after projecting both rewards,
     over every state of the layout, off the shaping directions (``pearson_unshaped``,
     :func:`~sparring.agents.softq.without_shaping`; a Boltzmann expert's own log-policy
     scores 1 there).

It draws both curves (return and correlation against demonstration count) as a PNG.

    python benchmarks/mamql_gems.py                  # about 9 minutes on 2 CPU cores
    python benchmarks/mamql_gems.py --demos 10,50 --steps 500
    python benchmarks/mamql_gems.py --json           # last line: one JSON object
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sparring.agents.learners.mamql import METHODS, Demonstrations, IRLConfig, build_learner
from sparring.agents.scripted.gems import SoftExpert
from sparring.agents.softq import marginalise, policy_return, without_shaping
from sparring.agents.trajectories import record_transitions
from sparring.envs import make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demos", default="10,50,200,500", help="demonstration counts (games), comma-separated")
    parser.add_argument("--steps", type=int, default=1500, help="updates per learner")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="mamql_gems.png", help="the PNG to write ('' for none)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.demos.split(","))
    started = time.time()

    expert = SoftExpert()
    game, tables, solution = expert.solution()
    layout = {k: getattr(expert.config, k) for k in ("size", "blue_gems", "red_gems", "purple_gems", "layout_seed")}
    horizon = make("gems-v0", parallel=True, **layout).game.config.horizon
    seats = {"blue": expert, "red": SoftExpert()}
    rows = record_transitions(lambda: make("gems-v0", parallel=True, **layout), seats,
                              range(args.seed, args.seed + counts[-1]))
    everything = Demonstrations.from_transitions(rows)
    visited = np.array([game.state_of("blue", o) for o in everything.obs["blue"]])
    every_obs = game.observations_of(np.arange(tables.num_states))
    expert_return = float(policy_return(tables, solution.policies, horizon).mean())
    true_reward = {a: marginalise(tables.reward[i], i, solution.policies[1 - i]) for i, a in enumerate(game.possible_agents)}

    returns = {m: [] for m in METHODS}
    pearson = {m: [] for m in METHODS}
    unshaped = {m: [] for m in METHODS}
    every_next = lambda i, j: {a: every_obs[a][tables.next[:, i, j]] for a in game.possible_agents}  # noqa: E731
    projected_true = {a: without_shaping(tables, i, true_reward[a], solution.policies[1 - i], expert.gamma)
                      for i, a in enumerate(game.possible_agents)}
    for count in counts:
        demos = everything.episodes(count)
        for method in METHODS:
            learner = build_learner(method, IRLConfig(steps=args.steps, seed=args.seed), demos,
                                    {a: 5 for a in demos.agents}).fit(demos)
            policies = learner.policies(every_obs)
            returns[method].append(float(policy_return(tables, (policies["blue"], policies["red"]), horizon).mean()))
            recovered = learner.recovered_reward(every_obs, every_next, tables.done)
            raw, invariant = [], []
            for i, a in enumerate(demos.agents):
                at = (visited, everything.actions[a])
                raw.append(np.corrcoef(recovered[a][at], true_reward[a][at])[0, 1])
                mine = without_shaping(tables, i, recovered[a], solution.policies[1 - i], expert.gamma)
                invariant.append(np.corrcoef(mine[at], projected_true[a][at])[0, 1])
            pearson[method].append(float(np.mean(raw)))
            unshaped[method].append(float(np.mean(invariant)))
            if not args.json:
                print(f"{count:4d} games  {method:9s} return {returns[method][-1]:5.2f} (expert {expert_return:.2f})  "
                      f"reward Pearson {pearson[method][-1]:.3f}, up to shaping {unshaped[method][-1]:.3f}", flush=True)

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for method in METHODS:
            left.plot(counts, returns[method], marker="o", label=method)
            line, = right.plot(counts, pearson[method], marker="o", label=f"{method} (raw)")
            right.plot(counts, unshaped[method], marker="s", ls=":", color=line.get_color(),
                       label=f"{method} (up to shaping)")
        left.axhline(expert_return, color="k", ls="--", label="expert")
        left.set(xscale="log", xlabel="demonstration games", ylabel="true return per agent", title="imitation")
        right.set(xscale="log", xlabel="demonstration games", ylabel="Pearson(recovered, true reward)",
                  title="reward recovery")
        left.legend()
        right.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
    result = {
        "demos": counts,
        "returns": {"expert": expert_return, **returns},
        "pearson": {m: pearson[m][-1] for m in METHODS},
        "pearson_by_demos": pearson,
        "pearson_unshaped": {m: unshaped[m][-1] for m in METHODS},
        "pearson_unshaped_by_demos": unshaped,
        "steps": args.steps, "layout": layout, "seconds": round(time.time() - started, 1),
        "plot": args.plot or None,
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
