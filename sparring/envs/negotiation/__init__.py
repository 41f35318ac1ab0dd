"""``sparring/negotiation-v0``: two players split a pool of items whose values are private.

A general-sum language game (after "Deal or No Deal", Lewis et al. 2017): every item type's
count is public, each player's values are its own secret, and the whole pool is worth
``total_value`` to both, so a good split gives each what it values most.

==================  =============================================================
Agents              ``player_0``, ``player_1``
Turns               alternating, ``player_0`` first, at most ``max_messages`` in all
Actions             text: exactly one bracketed move, ``[propose books=1 hats=0 balls=2]``
                    (what the proposer keeps; the other gets the rest), ``[accept]`` (the
                    other's offer on the table) or ``[walk away]``; the text around it is a
                    remark the other reads and the rules ignore
Observations        ``Dict(text, to_act, turn, hidden_cot)``: the pool, the player's own
                    values, the messages so far, the offer on the table
Rewards             at the end: ``deal`` (the value of the player's share of an accepted
                    offer, or ``no_deal_reward`` after a walk-away or the message limit) and,
                    per message, ``invalid`` (``invalid_penalty``; the turn passes and the
                    offer on the table stays)
Arguments           see :class:`NegotiationConfig`, plus ``render_mode``;
                    ``reset(options={"counts": [...], "values": {agent: [...]}})`` fixes a game
==================  =============================================================

``infos[agent]`` carries ``reward_terms``, ``invalid`` (reason or None), ``result`` (``deal``,
``walked away``, ``out of messages`` or None while playing) and ``shares`` (the player's items
in a deal). :meth:`NegotiationGame.action_texts` lists a game's moves as a finite set, for
learners that index actions; :class:`MoveIndex` indexes every game of a config alike, with each
observation's legal moves as a mask.

Version history: v0 — initial release.
"""

from __future__ import annotations

from sparring.envs.core import language_envs
from sparring.envs.negotiation.game import (
    ACCEPT,
    AGENTS,
    WALK,
    Deal,
    MoveIndex,
    NegotiationConfig,
    NegotiationGame,
    parse_move,
    position_features,
    proposal_text,
    read_position,
)


def _game(**kwargs) -> NegotiationGame:
    return NegotiationGame(NegotiationConfig.from_dict(kwargs))


raw_env, parallel_raw_env, env, parallel_env = language_envs(__name__, "negotiation_v0", _game)

__all__ = [
    "ACCEPT", "AGENTS", "WALK", "Deal", "MoveIndex", "NegotiationConfig", "NegotiationGame", "env", "parallel_env",
    "parallel_raw_env", "parse_move", "position_features", "proposal_text", "raw_env", "read_position",
]
