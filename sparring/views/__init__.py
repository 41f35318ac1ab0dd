"""Views of the games that seat policies inside them, above the agents they seat.

- :mod:`sparring.views.gym`: single-agent Gymnasium views (one seat learns, frozen policies
  play the others), registered as ``gymnasium.make("sparring:sparring/<View>-v0")``;
- :mod:`sparring.views.discrete`: numeric observations and a finite set of strategies per
  seat, the form RLlib's standard models train on;
- :mod:`sparring.views.rllib`: RLlib's multi-agent env over a discrete view, the PPO recipe
  and trainer, and trained RLlib policies as sparring policies.

Registering costs nothing here: entry points are strings, imported when a view is made.
"""

from sparring.envs.registry import register_view

register_view(
    "sparring/RedTeamDefender-v0",
    "sparring.views.gym:RedTeamDefenderEnv",
    "redteam-v0 from the defender's seat; the attacker is a frozen policy.",
)
register_view(
    "sparring/RedTeamAttacker-v0",
    "sparring.views.gym:RedTeamAttackerEnv",
    "redteam-v0 from the attacker's seat (every game revised); the defender is frozen.",
)
register_view(
    "sparring/RainbowMutator-v0",
    "sparring.views.gym:RainbowMutatorEnv",
    "rainbow-v0 from the mutator's seat (the RainbowPlus loop); the target is frozen.",
)
register_view(
    "sparring/Router-v0",
    "sparring.views.gym:RouterEnv",
    "router-v0 from the router's seat (Router-R1); the experts are frozen policies.",
)
register_view(
    "sparring/Matrix-v0",
    "sparring.views.gym:MatrixEnv",
    "matrix-v0 from player_0's seat; the other players are frozen policies.",
)
