"""Scripted players for ``sparring/negotiation-v0``: a softmax-rational negotiator (the expert
whose demonstrations inverse RL learns from), a fair-split negotiator and a walk-away, and the
game's strategy table for its discrete view.

Both read their position (pool, own values, the offer on the table, messages left) back from
the observation text with :func:`~sparring.envs.negotiation.game.read_position`.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from sparring.agents.base import ScriptedPolicy
from sparring.agents.scripted.common import Strategy
from sparring.envs.negotiation.game import ACCEPT, WALK, Position, proposal_text, read_position
from sparring.envs.parsing import answer_in_format
from sparring.errors import ConfigError


def move_utilities(position: Position, generosity: float = 8.0) -> tuple[list[str], np.ndarray]:
    """Every legal move's text and its expected reward to the player under a simple model of
    the other: an offer is accepted with probability σ(generosity · (share given − ½)), the
    share given counted in items, and cannot be answered with no message left."""
    values = np.array(position.values, dtype=float)
    moves, utility = [], []
    answerable = position.messages_left >= 2
    total = max(sum(position.counts), 1)
    for keep in itertools.product(*(range(c + 1) for c in position.counts)):
        given = (total - sum(keep)) / total
        accepted = 1.0 / (1.0 + np.exp(-generosity * (given - 0.5))) if answerable else 0.0
        moves.append(proposal_text(position.items, keep))
        utility.append(accepted * float(values @ np.array(keep)) + (1 - accepted) * position.no_deal)
    if position.offered is not None:
        moves.append(f"[{ACCEPT}]")
        utility.append(float(values @ np.array(position.offered)))
    moves.append(f"[{WALK}]")
    utility.append(position.no_deal)
    return moves, np.array(utility)


class SoftmaxNegotiator(ScriptedPolicy):
    """Softmax-rational: picks each legal move with probability ∝ exp(U / temperature), U its
    expected reward under :func:`move_utilities` (accepting is worth the offer exactly,
    walking away the no-deal reward). ``temperature`` → 0 is the greedy maximiser."""

    name = "negotiation.softmax"

    def __init__(self, temperature: float = 1.0, generosity: float = 8.0, seed: int | None = None):
        super().__init__(seed)
        if temperature < 0:
            raise ConfigError(f"temperature={temperature} must be >= 0")
        self.temperature, self.generosity = temperature, generosity

    def probabilities(self, observation: dict[str, Any]) -> tuple[list[str], np.ndarray]:
        moves, utility = move_utilities(read_position(observation["text"]), self.generosity)
        if self.temperature == 0:
            p = (utility == utility.max()).astype(float)
        else:
            p = np.exp((utility - utility.max()) / self.temperature)
        return moves, p / p.sum()

    def respond(self, agent: str, observation: dict[str, Any]) -> str:
        moves, p = self.probabilities(observation)
        move = moves[int(self.rng.choice(len(moves), p=p))]
        remark = {f"[{ACCEPT}]": "Deal.", f"[{WALK}]": "No thanks."}.get(move, "How about this?")
        return answer_in_format(observation, f"Weighing my values, I choose {move}.", f"{move} {remark}")


class FairNegotiator(ScriptedPolicy):
    """Accepts an offer worth at least ``accept_share`` of the pool to it; otherwise proposes
    the split it values most among those giving away at least ``give_share`` of the items."""

    name = "negotiation.fair"

    def __init__(self, accept_share: float = 0.5, give_share: float = 0.5, seed: int | None = None):
        super().__init__(seed)
        if not (0 <= accept_share <= 1 and 0 <= give_share <= 1):
            raise ConfigError(f"accept_share={accept_share} and give_share={give_share} must lie in [0, 1]")
        self.accept_share, self.give_share = accept_share, give_share

    def respond(self, agent: str, observation: dict[str, Any]) -> str:
        position = read_position(observation["text"])
        values = np.array(position.values, dtype=float)
        whole = float(values @ np.array(position.counts))
        if position.offered is not None and float(values @ np.array(position.offered)) >= self.accept_share * whole:
            move = f"[{ACCEPT}]"
        else:
            total = sum(position.counts)
            splits = [k for k in itertools.product(*(range(c + 1) for c in position.counts))
                      if total - sum(k) >= self.give_share * total]
            move = proposal_text(position.items, max(splits, key=lambda k: (float(values @ np.array(k)), -sum(k))))
        return answer_in_format(observation, f"My split: {move}.", f"{move} That seems fair.")


class WalkAway(ScriptedPolicy):
    """Ends every negotiation at its first move."""

    name = "negotiation.walk"

    def respond(self, agent: str, observation: dict[str, Any]) -> str:
        return answer_in_format(observation, "No deal is worth it.", f"[{WALK}] Goodbye.")


def strategies(game: Any) -> dict[str, list[Strategy]]:
    """negotiation-v0's discrete view: the same four ways to negotiate for both seats."""
    return {seat: [Strategy("fair", FairNegotiator()), Strategy("rational", SoftmaxNegotiator(temperature=0)),
                   Strategy("hardball", FairNegotiator(accept_share=0.8, give_share=0.0)),
                   Strategy("walk away", WalkAway())] for seat in game.possible_agents}
