"""Games as PettingZoo environments, on one language-game core.

``make(id, **kwargs)`` builds any registered game; ``GAMES`` lists them. Each game module
(``sparring.envs.redteam``, ``sparring.envs.matrix``) also exposes ``env()``,
``parallel_env()`` and ``raw_env`` in PettingZoo's style.
"""

from sparring.envs.core import LanguageAECEnv, LanguageGame, LanguageParallelEnv, Move, Outcome
from sparring.envs.registry import (
    GAMES,
    VIEWS,
    GameSpec,
    UnknownGameError,
    make,
    register_game,
    register_view,
    spec,
)
from sparring.envs.spaces import Utterance

register_game(
    "sparring/redteam-v0",
    "sparring.envs.redteam",
    "Self-RedTeam: an attacker rewrites seed prompts, a defender answers, a judge scores.",
)
register_game(
    "sparring/matrix-v0",
    "sparring.envs.matrix",
    "Normal-form games in text (RPS, prisoner's dilemma, open_spiel), one-shot or iterated.",
)
register_game(
    "sparring/preference-v0",
    "sparring.envs.preference",
    "INPO's preference game: players answer one prompt at once, an oracle prefers one answer.",
)
register_view(
    "sparring/RedTeamDefender-v0",
    "sparring.envs.gym_views:RedTeamDefenderEnv",
    "redteam-v0 from the defender's seat; the attacker is a frozen policy.",
)
register_view(
    "sparring/RedTeamAttacker-v0",
    "sparring.envs.gym_views:RedTeamAttackerEnv",
    "redteam-v0 from the attacker's seat (every game revised); the defender is frozen.",
)
register_view(
    "sparring/Matrix-v0",
    "sparring.envs.gym_views:MatrixEnv",
    "matrix-v0 from player_0's seat; the other players are frozen policies.",
)

__all__ = [
    "GAMES", "VIEWS", "GameSpec", "LanguageAECEnv", "LanguageGame", "LanguageParallelEnv",
    "Move", "Outcome", "UnknownGameError", "Utterance", "make", "register_game",
    "register_view", "spec",
]
