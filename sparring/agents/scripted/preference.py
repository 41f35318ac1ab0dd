"""Scripted answer styles for ``sparring/preference-v0``: the actions of its discrete view."""

from __future__ import annotations

from typing import Any

from sparring.agents.scripted.common import CannedPolicy, Strategy

STYLES = {
    "focused": "For {request}: start with the basics, practise a little every day, and check what "
               "works before you add more.",
    "generic": "Good question. It depends on your situation, so think about your goals, try a few "
               "approaches and keep whatever works best for you.",
    "terse": "It depends.",
    "rambling": "There are many ways to look at this, and people disagree about almost every part of "
                "it. Some say one thing, others say another, and the history of the question is long "
                "and winding. In the end much depends on taste, circumstance, timing, resources, "
                "temperament, luck and a great many other considerations that are hard to list, so "
                "the honest answer is that it varies from person to person and from day to day.",
}


def strategies(game: Any) -> dict[str, list[Strategy]]:
    """Every seat answers in one of the :data:`STYLES`."""
    return {seat: [Strategy(style, CannedPolicy(style, answer, f"Answer in the {style} style."))
                   for style, answer in STYLES.items()] for seat in game.possible_agents}
