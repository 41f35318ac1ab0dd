"""``sparring/preference-v0``: the two-player (or K-player) preference game of INPO.

Every episode draws a prompt; all players answer at once; a preference oracle returns
P(a ≻ b | prompt) for each pair of answers.

==================  =============================================================
Agents              ``player_0`` … ``player_{K-1}`` (``num_players``, default 2)
Turns               one simultaneous move (native in the Parallel env)
Actions             text: ``reasoning </think> <answer> ANSWER </answer>`` (or the raw
                    answer with ``hidden_cot=False``); only ANSWER is judged
Observations        ``Dict(text, to_act, turn, hidden_cot)``: the request and the answer format
Rewards             two players: P − 0.5 and 0.5 − P; K players: each player's mean of
                    P(it ≻ other) − 0.5 over the others. A malformed answer loses to a
                    well-formed one (P = 0 or 1), two malformed answers tie
Oracle              ``oracle="rule"`` (a heuristic, the default) or any object with
                    ``prefer(prompt, a, b)`` (see :mod:`sparring.judges.preference`)
Arguments           see :class:`PreferenceConfig`, plus ``oracle`` and ``render_mode``
==================  =============================================================

``infos[agent]`` carries ``reward_terms``, ``invalid``, ``prompt``, ``win_probability`` (its mean
P of beating the others) and ``preferences`` (other agent → P(it ≻ other)).

Version history: v0 — initial release; observations carry ``hidden_cot`` (the answer format
the game expects), and reasoning never crosses on a malformed output.
"""

from __future__ import annotations

from sparring.envs.core import language_envs
from sparring.envs.preference.game import PreferenceConfig, PreferenceGame, compare, load_prompts
from sparring.judges.preference import PreferenceOracle


def _game(oracle: PreferenceOracle | str | None = None, **kwargs) -> PreferenceGame:
    return PreferenceGame(PreferenceConfig.from_dict(kwargs), oracle)


raw_env, parallel_raw_env, env, parallel_env = language_envs(__name__, "preference_v0", _game)

__all__ = ["PreferenceConfig", "PreferenceGame", "compare", "env", "load_prompts", "parallel_env",
           "parallel_raw_env", "raw_env"]
