"""Env overhead: sparring's matrix-v0 against TextArena, on the iterated prisoner's dilemma.

What is measured
----------------
The same pair of random agents plays 10-round iterated prisoner's dilemmas in

* sparring: ``sparring.make("sparring/matrix-v0", rounds=10)``, the wrapped PettingZoo AEC
  env users get by default, driven by the standard ``agent_iter()`` / ``last()`` / ``step()``
  loop, one env reused through ``reset(seed=...)``; and
* TextArena: ``textarena.make("IteratedPrisonersDilemma-v0")`` (10 rounds, one chat turn per
  player before each decision), driven by its ``get_observation()`` / ``step()`` loop, in two
  ways:

  - *fresh* (the headline, ``textarena_fresh_env_steps_per_s`` and ``ratio_fresh_env``): a
    new env per game, built outside the timed region, TextArena's fast path;
  - *reused* (with ``--reused``: ``textarena_steps_per_s``, ``ratio_reused_env``): one env
    made once and reset for each of the ``--games`` games of a repeat, as a loop over games
    naturally does. Its ``LLMObservationWrapper`` keeps the messages of every past game across
    ``reset()`` and re-renders them on each observation, so it slows down as games accumulate
    (quadratically in the games played); the ratio against it measures that slowdown more than
    sparring, so it is not the headline, and it is left out by default.

A *step* is one agent move: one ``step(text)`` by a live agent (PettingZoo's trailing
``step(None)`` calls for finished agents are played but not counted). A *round* is one joint
decision. TextArena spends 4 steps per round (2 chat + 2 decisions), sparring 2, so rounds/s
is reported next to steps/s.

Each env is warmed up; the timed repeats alternate between the envs (and which one goes
first, and within a repeat the envs take turns every few games, so that the machine's slow
spells fall on both), and the median steps/s over the repeats gives the ratios.

Run (TextArena comes with the ``bench`` extra: ``pip install -e '.[bench]'``)::

    python benchmarks/env_overhead.py            # readable summary
    python benchmarks/env_overhead.py --json     # the last stdout line is one JSON object
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable

import sparring

MOVES = ("[Cooperate]", "[Defect]")
ROUNDS = 10
TARGET_RATIO = 2.0
"""The goal for ``ratio_fresh_env``: sparring at least twice as fast as TextArena's fast path."""
SPARRING_ID = "sparring/matrix-v0"
TEXTARENA_ID = "IteratedPrisonersDilemma-v0"


class RandomAgent:
    """Reads its observation text and answers a uniformly random move.

    It owns its generator: TextArena reseeds the global ``random`` module on every reset,
    and the agents must draw the same way in both envs.
    """

    def __init__(self, seed: int):
        self._rng = random.Random(seed)

    def __call__(self, observation: str) -> str:
        if not isinstance(observation, str):
            raise TypeError(f"expected the observation text, got {type(observation).__name__}")
        return self._rng.choice(MOVES)


def agent_pair(seed: int) -> tuple[RandomAgent, RandomAgent]:
    return RandomAgent(2 * seed), RandomAgent(2 * seed + 1)


# -- one game in each env -------------------------------------------------------------------
def play_sparring(env, agents: tuple[RandomAgent, RandomAgent], seed: int) -> int:
    """One game in the sparring AEC env; returns the number of agent moves."""
    by_name = dict(zip(env.possible_agents, agents))
    env.reset(seed=seed)
    steps = 0
    for name in env.agent_iter():
        observation, _, terminated, truncated, _ = env.last()
        if terminated or truncated:
            env.step(None)  # PettingZoo's dead-agent step: bookkeeping, not a move
            continue
        env.step(by_name[name](observation["text"]))
        steps += 1
    return steps


def play_textarena(env, agents: tuple[RandomAgent, RandomAgent], seed: int) -> int:
    """One game in the TextArena env; returns the number of agent moves."""
    env.reset(num_players=2, seed=seed)
    steps = 0
    done = False
    while not done:
        player_id, observation = env.get_observation()
        done, _ = env.step(agents[player_id](observation))
        steps += 1
    env.close()
    return steps


# -- runners: build envs (untimed), then play a batch of games (timed) ----------------------
#: ``runner(games, first_seed)`` -> (a call that plays the batch and returns its steps,
#: the number of rounds in the batch).
Runner = Callable[[int, int], tuple[Callable[[], int], int]]


def sparring_runner(games: int, first_seed: int):
    env = sparring.make(SPARRING_ID, rounds=ROUNDS, game="prisoners_dilemma")
    agents = agent_pair(first_seed)

    def run() -> int:
        return sum(play_sparring(env, agents, first_seed + i) for i in range(games))

    return run, games * ROUNDS


def textarena_runner(ta, fresh: bool):
    def runner(games: int, first_seed: int):
        if fresh:
            envs = [ta.make(TEXTARENA_ID) for _ in range(games)]
        else:
            envs = [ta.make(TEXTARENA_ID)] * games  # one env, reset for every game
        assert envs[0].num_rounds == ROUNDS, envs[0].num_rounds
        agents = agent_pair(first_seed)

        def run() -> int:
            return sum(play_textarena(env, agents, first_seed + i) for i, env in enumerate(envs))

        return run, games * ROUNDS

    return runner


def timed(runner: Runner, games: int, first_seed: int) -> tuple[int, int, float]:
    """Play ``games`` games; returns (steps, rounds, seconds)."""
    run, rounds = runner(games, first_seed)
    gc.collect()  # do not charge one env with the other's garbage
    start = time.perf_counter()
    steps = run()
    return steps, rounds, time.perf_counter() - start


CHUNK = 50
"""Games each env plays before the other takes over, inside a repeat."""


def measure(runners: dict[str, Runner], games: int, repeats: int, seed: int) -> dict:
    """Each env's steps/s and rounds/s, the median over repeats. Within a repeat the envs take
    turns every ``CHUNK`` games (alternating which goes first), so that a slow spell of the
    machine falls on both alike; a repeat's rate is its games' steps over their summed time."""
    for runner in runners.values():  # warm-up
        timed(runner, min(games, CHUNK), seed)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    names = list(runners)
    for repeat in range(repeats):
        totals = {name: [0, 0, 0.0] for name in names}
        for k, start in enumerate(range(0, games, CHUNK)):
            order = names if (repeat + k) % 2 == 0 else names[::-1]
            for name in order:
                steps, rounds, seconds = timed(runners[name], min(CHUNK, games - start), seed + start)
                for i, value in enumerate((steps, rounds, seconds)):
                    totals[name][i] += value
        for name, (steps, rounds, seconds) in totals.items():
            samples[name].append((steps / seconds, rounds / seconds))
    return {
        name: {
            "steps_per_s": statistics.median(s for s, _ in rates),
            "rounds_per_s": statistics.median(r for _, r in rates),
        }
        for name, rates in samples.items()
    }


def report(results: dict, games: int, repeats: int, ta_version: str) -> dict:
    sp, fresh = results["sparring"], results["textarena_fresh"]
    ratio = sp["steps_per_s"] / fresh["steps_per_s"]
    reused = {}
    if "textarena" in results:
        ta = results["textarena"]
        reused = {"textarena_steps_per_s": round(ta["steps_per_s"], 1),
                  "ratio_reused_env": round(sp["steps_per_s"] / ta["steps_per_s"], 2),
                  "textarena_rounds_per_s": round(ta["rounds_per_s"], 1)}
    return {
        "sparring_steps_per_s": round(sp["steps_per_s"], 1),
        "textarena_fresh_env_steps_per_s": round(fresh["steps_per_s"], 1),
        "ratio_fresh_env": round(ratio, 2),
        **reused,
        "sparring_rounds_per_s": round(sp["rounds_per_s"], 1),
        "textarena_fresh_env_rounds_per_s": round(fresh["rounds_per_s"], 1),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "games_per_repeat": games,
        "repeats": repeats,
        "rounds_per_game": ROUNDS,
        "versions": {"sparring": sparring.__version__, "textarena": ta_version},
    }


def print_summary(summary: dict) -> None:
    print(f"Iterated prisoner's dilemma, {ROUNDS} rounds, random agents, "
          f"{summary['games_per_repeat']} games per repeat; median of {summary['repeats']} repeats")
    rows = [("sparring matrix-v0", "sparring"), ("TextArena, fresh env per game", "textarena_fresh_env"),
            ("TextArena, reused env", "textarena")]
    print(f"{'':32}{'steps/s':>12}{'rounds/s':>12}")
    for label, key in rows:
        if f"{key}_steps_per_s" in summary:
            print(f"{label:32}{summary[f'{key}_steps_per_s']:>12,.0f}{summary[f'{key}_rounds_per_s']:>12,.0f}")
    verdict = "meets" if summary["meets_target"] else "misses"
    print(f"sparring / TextArena (fresh env per game): {summary['ratio_fresh_env']:.2f}x steps/s "
          f"({verdict} the {TARGET_RATIO:g}x goal)")
    if "ratio_reused_env" in summary:
        print(f"against a reused TextArena env, which slows as games accumulate: {summary['ratio_reused_env']:.1f}x")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=300,
                        help="games per timed repeat for each env (default: 300)")
    parser.add_argument("--repeats", type=int, default=9, help="timed repeats per env (default: 9)")
    parser.add_argument("--seed", type=int, default=0, help="first game seed (default: 0)")
    parser.add_argument("--reused", action="store_true",
                        help="also time one TextArena env reused across games (slow: it slows as games accumulate)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object as the last line of stdout")
    args = parser.parse_args(argv)
    if args.games < 1:
        parser.error("--games must be >= 1")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # TextArena may print on import
            import textarena as ta
    except ImportError as error:
        print(f"error: this benchmark needs TextArena ({error}).\n"
              f"Install it with: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    runners = {"sparring": sparring_runner, "textarena_fresh": textarena_runner(ta, fresh=True)}
    if args.reused:
        runners["textarena"] = textarena_runner(ta, fresh=False)
    # Anything the envs print while playing would land between our lines (or after the JSON).
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        results = measure(runners, args.games, args.repeats, args.seed)
    summary = report(results, args.games, args.repeats, getattr(ta, "__version__", "unknown"))
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
