"""sparring: language-model policies playing multi-agent games against each other.

``import sparring`` registers the games with PettingZoo and the single-agent views with
Gymnasium; ``sparring.make(id)`` builds a game.
"""

import sparring.views  # noqa: F401  (registers the Gymnasium views)
from sparring.envs import GAMES, make

__version__ = "0.1.0"
__all__ = ["GAMES", "__version__", "make"]
