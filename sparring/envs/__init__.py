"""Games as PettingZoo environments, on one language-game core.

``make(id, **kwargs)`` builds any registered game; ``GAMES`` lists them. Each game module
(``sparring.envs.redteam``, ``sparring.envs.rainbow``, ``sparring.envs.router``, ``sparring.envs.matrix``,
``sparring.envs.preference``, ``sparring.envs.gems``, ``sparring.envs.negotiation``) also exposes ``env()``, ``parallel_env()`` and ``raw_env`` in
PettingZoo's style.
"""

from sparring.envs.core import (
    Demonstration,
    LanguageAECEnv,
    LanguageGame,
    LanguageParallelEnv,
    Move,
    Outcome,
)
from sparring.envs.registry import GAMES, VIEWS, GameSpec, make, register_game, register_view, spec
from sparring.envs.spaces import Utterance
from sparring.errors import UnknownGameError

register_game(
    "sparring/redteam-v0",
    "sparring.envs.redteam",
    "Self-RedTeam: an attacker rewrites seed prompts, a defender answers, a judge scores.",
    default_seats={"attacker": "redteam.roleplay", "defender": "redteam.keyword"},
    baselines={
        "attacker": ("redteam.verbatim", "redteam.roleplay", "redteam.hypothetical", "redteam.misspell"),
        "defender": ("redteam.comply", "redteam.refuse", "redteam.keyword"),
    },
    strategies="sparring.agents.scripted.redteam:strategies",
    batch_metrics="sparring.envs.redteam.diversity:batch_metrics",
)
register_game(
    "sparring/rainbow-v0",
    "sparring.envs.rainbow",
    "RainbowPlus: a mutator fills an archive of attack prompts per (category, style); a target answers.",
    default_seats={"mutator": "rainbow.style", "target": "redteam.keyword"},
    baselines={"mutator": ("rainbow.style", "rainbow.verbatim"),
               "target": ("redteam.comply", "redteam.refuse", "redteam.keyword")},
)
register_game(
    "sparring/router-v0",
    "sparring.envs.router",
    "Router-R1: a router answers questions by asking priced experts; rewarded on exact match and cost.",
    default_seats={"router": "router.cheapest", "*": "router.expert"},
    baselines={"router": ("router.cheapest", "router.strongest", "router.random", "router.oracle")},
)
register_game(
    "sparring/matrix-v0",
    "sparring.envs.matrix",
    "Normal-form games in text (RPS, prisoner's dilemma, open_spiel), one-shot or iterated.",
    default_seats={"*": "matrix.tit_for_tat"},
    baselines={"*": ("matrix.constant", "matrix.random", "matrix.tit_for_tat")},
    strategies="sparring.agents.scripted.matrix:strategies",
)
register_game(
    "sparring/gems-v0",
    "sparring.envs.gems",
    "Gems: two agents collect their own gems and meet on purple ones for a shared bonus (a general-sum grid world).",
    default_seats={"*": "gems.greedy"},
    baselines={"*": ("gems.greedy", "gems.expert")},
    numeric=True,
)
register_game(
    "sparring/negotiation-v0",
    "sparring.envs.negotiation",
    "Two players split items with private values by messages: propose, accept or walk away (general-sum).",
    default_seats={"*": "negotiation.fair"},
    baselines={"*": ("negotiation.fair", "negotiation.softmax", "negotiation.walk")},
    strategies="sparring.agents.scripted.negotiation:strategies",
    moves="sparring.envs.negotiation:MoveIndex",
)
register_game(
    "sparring/preference-v0",
    "sparring.envs.preference",
    "INPO's preference game: players answer one prompt at once, an oracle prefers one answer.",
    strategies="sparring.agents.scripted.preference:strategies",
)

__all__ = [
    "GAMES", "VIEWS", "Demonstration", "GameSpec", "LanguageAECEnv", "LanguageGame", "LanguageParallelEnv",
    "Move", "Outcome", "UnknownGameError", "Utterance", "make", "register_game",
    "register_view", "spec",
]
