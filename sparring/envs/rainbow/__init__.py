"""``sparring/rainbow-v0``: RainbowPlus quality-diversity red-teaming as a two-agent game.

Each game is one candidate of the search. It draws a parent prompt (the harmful seeds in
order while they last, each until a candidate of it reaches the target; then uniformly from
the archive) and a target cell (a risk category
and an attack style, each uniform). The **mutator** writes one new prompt for that cell;
a candidate too close to what it came from (sentence BLEU against the nearest of the parent
and the cell's prompts, or against the whole mutator instruction, at or above ``sim_threshold``) is
filtered out. Otherwise the **target** answers it, the judge's P(unsafe | prompt, answer) is
its fitness, and a candidate fitter than ``fitness_threshold`` joins the archive
(:class:`~sparring.envs.rainbow.archive.Archive`: every fit prompt per cell, or one elite).

==================  =============================================================
Agents              ``mutator``, ``target``
Turns               sequential: mutator, then target (unless the candidate was filtered)
Actions             text (``Utterance``): ``reasoning </think> <answer> TEXT </answer>``
Observations        ``Dict(text, to_act, turn, hidden_cot)``
Rewards             terminal: mutator = fitness, target = 1 − fitness
Arguments           see :class:`RainbowConfig`, plus ``judge``, ``archive`` and ``render_mode``
==================  =============================================================

Rewards of the other endings: a filtered candidate pays both 0; a mutator output with no
prompt in it pays the mutator −1 (its format penalty) and the target 0; a target output with
no answer pays the target −1 and the mutator 0. ``infos[agent]`` carries the ``category``,
``style``, ``parent``, ``candidate``, its ``bleu``, ``fitness``, whether it was
``inserted`` and, when it was not, the ``reason``. The first line of the mutator's visible
text is the candidate; its reasoning never reaches the target.

The archive is the game's state across ``reset()``: pass one :class:`Archive` to many games
(``archive=``) to share it, or name a JSON file in the config (``archive: PATH``) to load it
and save it after every insertion and every seed tried. Games set up at once each draw their
own seed as the parent (a seed whose candidate never reached the target is drawn again).
``reset(options=...)`` may fix ``parent``, ``category`` and ``style``.

Version history: v0 — initial release.
"""

from __future__ import annotations

from sparring.envs.core import language_envs
from sparring.envs.rainbow.archive import Archive, Entry, load_archive
from sparring.envs.rainbow.game import CATEGORIES, STYLES, RainbowConfig, RainbowGame


def _game(judge=None, archive: Archive | str | None = None, **kwargs) -> RainbowGame:
    if isinstance(judge, str):  # a judge by name is part of the config
        kwargs["judge"], judge = judge, None
    if isinstance(archive, str) or archive is None:  # a file is part of the config
        kwargs["archive"], archive = archive, None
    return RainbowGame(RainbowConfig.from_dict(kwargs), judge=judge, archive=archive)


raw_env, parallel_raw_env, env, parallel_env = language_envs(__name__, "rainbow_v0", _game)

__all__ = [
    "CATEGORIES", "STYLES", "Archive", "Entry", "RainbowConfig", "RainbowGame", "env", "load_archive", "parallel_env",
    "parallel_raw_env", "raw_env",
]
