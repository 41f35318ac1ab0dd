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

  - *reused* (the reference figure, ``textarena_steps_per_s``): one env made once and reset
    for each of the ``--games`` games of a repeat, as a loop over games naturally does. Its
    ``LLMObservationWrapper`` keeps the messages of every past game across ``reset()`` and
    re-renders them on each observation, so it slows down as games accumulate: over 100
    games it runs about 1.1 ms per step on a 2-core machine.
  - *fresh* (``textarena_fresh_env_steps_per_s``): a new env per game, built outside the
    timed region, TextArena's best case.

A *step* is one agent move: one ``step(text)`` by a live agent (PettingZoo's trailing
``step(None)`` calls for finished agents are played but not counted). A *round* is one joint
decision. TextArena spends 4 steps per round (2 chat + 2 decisions), sparring 2, so rounds/s
is reported next to steps/s.

Each env is warmed up; the timed repeats alternate between the envs (and which one goes
first), and the median steps/s of each gives the ratios.

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
TARGET_RATIO = 20.0
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


def measure(runners: dict[str, Runner], games: int, repeats: int, seed: int) -> dict:
    for runner in runners.values():  # warm-up
        timed(runner, min(games, 10), seed)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    names = list(runners)
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else names[::-1]  # cancel drift between the envs
        for name in order:
            steps, rounds, seconds = timed(runners[name], games, seed)
            samples[name].append((steps / seconds, rounds / seconds))
    return {
        name: {
            "steps_per_s": statistics.median(s for s, _ in rates),
            "rounds_per_s": statistics.median(r for _, r in rates),
        }
        for name, rates in samples.items()
    }


def report(results: dict, games: int, repeats: int, ta_version: str) -> dict:
    sp, ta, fresh = results["sparring"], results["textarena"], results["textarena_fresh"]
    ratio = sp["steps_per_s"] / ta["steps_per_s"]
    return {
        "sparring_steps_per_s": round(sp["steps_per_s"], 1),
        "textarena_steps_per_s": round(ta["steps_per_s"], 1),
        "ratio": round(ratio, 2),
        "textarena_fresh_env_steps_per_s": round(fresh["steps_per_s"], 1),
        "ratio_fresh_env": round(sp["steps_per_s"] / fresh["steps_per_s"], 2),
        "sparring_rounds_per_s": round(sp["rounds_per_s"], 1),
        "textarena_rounds_per_s": round(ta["rounds_per_s"], 1),
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
    rows = [("sparring matrix-v0", "sparring"), ("TextArena, reused env", "textarena"),
            ("TextArena, fresh env per game", "textarena_fresh_env")]
    print(f"{'':32}{'steps/s':>12}{'rounds/s':>12}")
    for label, key in rows:
        print(f"{label:32}{summary[f'{key}_steps_per_s']:>12,.0f}{summary[f'{key}_rounds_per_s']:>12,.0f}")
    verdict = "meets" if summary["meets_target"] else "misses"
    print(f"sparring / TextArena (reused env): {summary['ratio']:.1f}x steps/s "
          f"({verdict} the {TARGET_RATIO:g}x goal); against a fresh TextArena env per game: "
          f"{summary['ratio_fresh_env']:.2f}x")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=100,
                        help="games per timed repeat for each env (default: 100)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per env (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="first game seed (default: 0)")
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
    runners = {
        "sparring": sparring_runner,
        "textarena": textarena_runner(ta, fresh=False),
        "textarena_fresh": textarena_runner(ta, fresh=True),
    }
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
