"""RLlib (new API stack) multi-agent PPO on the games' discrete views, and its agents.

- :class:`SimultaneousEnv`: a numeric game (``gems-v0``) as an RLlib ``MultiAgentEnv``, as it
  is: its vector observations and integer moves need no view.
- :class:`TurnBasedEnv`: a discrete view (:mod:`sparring.views.discrete`) as an RLlib
  ``MultiAgentEnv`` with RLlib's turn-taking contract: an agent receives an observation only
  when its next action counts, rewards earned while it waits are credited to its next step,
  and every agent that acted gets a final observation when the game ends. An agent that never
  acts in a game (the attacker of a verbatim redteam game) never appears in that episode.
- :class:`RLlibConfig` / :func:`build_ppo_config`: the typed recipe (``configs/rllib/*.yaml``)
  and the ``PPOConfig`` it describes: policy mapping, small MLPs, CPU-sized batches.
- :class:`RLlibTrainer` / :func:`train_rllib`: trains for N iterations (``on_update`` sees
  each iteration's metrics; the command line shows them as progress), through the run module
  (:mod:`sparring.runs`): ``config.json``, ``metrics.jsonl`` (one line
  per iteration), ``checkpoints/update-N/`` (``algorithm/`` from ``save_to_path`` plus the
  view's description, written atomically), TensorBoard events and ``learning_curve.png``;
  ``resume=True`` continues from the last checkpoint. Run directories are absolute paths by
  the time RLlib sees them (its checkpoints are URIs, which a relative path is not).
- :class:`RLlibPolicy`: a trained RLModule as a sparring :class:`~sparring.agents.Policy`: it
  encodes the observation exactly as the view does and writes the chosen strategy's text (a
  numeric game's move index), so RLlib agents sit in any game of that kind and in arena
  tournaments.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pettingzoo import ParallelEnv
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

from sparring.agents.base import Action, Policy
from sparring.config import above, at_least, check
from sparring.envs.registry import make, spec
from sparring.errors import ConfigError, ModelNotFoundError
from sparring.runs import RunSettings, atomic_write_text, check_engine, checkpoint_of
from sparring.views.discrete import (
    DiscreteConfig,
    DiscreteParallelEnv,
    ObservationEncoder,
    env_creator,
    strategies,
)

VIEW_FILE = "sparring_view.json"
SHARING = ("per_agent", "shared")


class SimultaneousEnv(ParallelPettingZooEnv):
    """A numeric game (registered ``numeric=True``: vector observations and integer moves, every
    agent moving every step, as ``gems-v0``) as an RLlib ``MultiAgentEnv``, as it is: no text
    to encode, no strategy table. Built from ``{"game": id, "game_kwargs": {...}}`` (and
    ``render_mode``)."""

    def __init__(self, config: Mapping[str, Any] | None = None):
        config = dict(config or {})
        super().__init__(make(config["game"], parallel=True, render_mode=config.get("render_mode"),
                              **dict(config.get("game_kwargs") or {})))
        self.possible_agents = list(self.par_env.possible_agents)
        self.agents = list(self.possible_agents)
        self.observation_spaces = {a: self.par_env.observation_space(a) for a in self.possible_agents}
        self.action_spaces = {a: self.par_env.action_space(a) for a in self.possible_agents}

    def render(self):
        return self.par_env.render()  # RLlib's wrapper passes its render mode, which PettingZoo's render takes not


def numeric_game(game_id: str) -> bool:
    return spec(game_id).numeric


class TurnBasedEnv(ParallelPettingZooEnv):
    """RLlib's view of a :class:`DiscreteParallelEnv` (see the module docstring). Built from
    an ``env_config`` of :class:`~sparring.views.discrete.DiscreteConfig` fields; register it
    with ``tune.register_env(name, TurnBasedEnv)``."""

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__(env_creator(dict(config or {})))
        env: DiscreteParallelEnv = self.par_env
        self.possible_agents = list(env.possible_agents)
        self.agents = list(self.possible_agents)
        self.observation_spaces = {a: env.observation_space(a) for a in self.possible_agents}
        self.action_spaces = {a: env.action_space(a) for a in self.possible_agents}
        self._acted: set[str] = set()

    def render(self):
        return self.par_env.render()  # as SimultaneousEnv's

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, infos = self.par_env.reset(seed=seed, options=options)
        # ``agents`` lists the seats of the current game and stays until the next reset:
        # RLlib's checks read it after the final step too.
        self.agents = list(self.par_env.agents)
        self._acted = set()
        acting = self.par_env.acting()
        return {a: obs[a] for a in acting}, {a: infos[a] for a in acting}

    def step(self, action_dict):
        acting = self.par_env.acting()
        self._acted |= set(acting)
        obs, rewards, terminateds, truncateds, infos = self.par_env.step(action_dict)
        if not self.par_env.agents:  # the game is over: close the episode of every agent that acted
            done = [a for a in obs if a in self._acted]
            terminated = {a: terminateds[a] for a in done}
            truncated = {a: truncateds[a] for a in done}
            terminated["__all__"], truncated["__all__"] = not any(truncated.values()), any(truncated.values())
            return ({a: obs[a] for a in done}, {a: rewards[a] for a in done}, terminated, truncated,
                    {a: infos[a] for a in done})
        # An agent that leaves a game still in progress closes its episode with its last observation.
        left = [a for a in obs if a in self._acted and (terminateds[a] or truncateds[a])]
        seen = [*self.par_env.acting(), *left]
        paid = [a for a in rewards if a in self._acted or a in seen]
        return ({a: obs[a] for a in seen}, {a: rewards[a] for a in paid},
                {"__all__": False, **{a: terminateds[a] for a in left}},
                {"__all__": False, **{a: truncateds[a] for a in left}}, {a: infos[a] for a in seen})


# -- the recipe -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PPOSettings:
    lr: float = 3e-4
    gamma: float = 0.99
    lambda_: float = 0.95
    clip_param: float = 0.2
    entropy_coeff: float = 0.01
    vf_loss_coeff: float = 0.5
    train_batch_size_per_learner: int = 400
    """Env steps sampled per iteration."""
    minibatch_size: int = 100
    num_epochs: int = 5

    def __post_init__(self) -> None:
        problems = above(self, 0, "lr", "clip_param", "train_batch_size_per_learner", "minibatch_size",
                         "num_epochs", where="ppo")
        if not 0 <= self.gamma <= 1 or not 0 <= self.lambda_ <= 1:
            problems.append(f"ppo.gamma={self.gamma} and ppo.lambda_={self.lambda_} must lie in [0, 1]")
        if self.minibatch_size > self.train_batch_size_per_learner:
            problems.append(f"ppo.minibatch_size={self.minibatch_size} exceeds ppo.train_batch_size_per_learner="
                            f"{self.train_batch_size_per_learner}")
        check(problems)


@dataclass(frozen=True)
class ModelSettings:
    fcnet_hiddens: tuple[int, ...] = (64, 64)
    fcnet_activation: str = "tanh"
    vf_share_layers: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "fcnet_hiddens", tuple(self.fcnet_hiddens))
        if not self.fcnet_hiddens or min(self.fcnet_hiddens) < 1:
            raise ConfigError(f"model.fcnet_hiddens={list(self.fcnet_hiddens)} must be a non-empty list of sizes")


@dataclass(frozen=True)
class RLlibConfig(RunSettings):
    """An RLlib run: the game, its discrete view, who shares which policy, and the budgets."""

    env: dict[str, Any] = field(default_factory=dict)
    """The game: ``id`` plus its arguments (``configs/env/*.yaml``)."""
    rllib: str = ""
    """The recipe (``configs/rllib/NAME.yaml``, chosen by ``rllib=NAME``) the run was composed
    from; each recipe sets its own name, so a resume that names another recipe is refused."""
    view: dict[str, Any] = field(default_factory=dict)
    """:class:`~sparring.views.discrete.DiscreteConfig` fields other than ``game``/``game_kwargs``."""
    policy_sharing: str = "per_agent"
    """``per_agent`` (one policy per seat, named after it) or ``shared`` (one policy ``shared``)."""
    policy_mapping: dict[str, str] | None = None
    """Seat → policy id, overriding ``policy_sharing``."""
    ppo: PPOSettings = field(default_factory=PPOSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    iterations: int = 20
    """Training iterations (``algo.train()`` calls); 0 saves the initial policy as checkpoint 0."""
    num_env_runners: int = 0
    """0: sample in this process (enough for these games on a laptop)."""
    num_envs_per_env_runner: int = 1
    rollout_fragment_length: int | str = "auto"
    """Env steps per sampling call (``auto``: the whole batch). RLlib's env runner revisits
    every episode finished within a call at each step, so games of one or two moves sample
    several times faster in short fragments (e.g. 32)."""
    metrics_smoothing_episodes: int = 50
    """Episodes averaged into each iteration's episode returns."""
    run_dir: str = "runs/rllib"
    checkpoint_every: int = 5
    progress: bool = True
    """``sparring train engine=rllib`` shows progress: a bar in a terminal, else a line every
    ``progress_every_s``."""

    RESUMABLE = (*RunSettings.RESUMABLE, "iterations", "progress")
    BUDGET = "iterations"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> RLlibConfig:
        """The typed recipe, after refusing a ``run_dir`` that holds a run of the sparring
        engine: resuming one with ``engine=rllib`` hands its recipe here, whose fields are no
        RLlib recipe's, and the run's name says more than a list of unknown fields."""
        check_engine(values or {}, "rllib")
        return super().from_dict(values)

    def __post_init__(self) -> None:
        problems = []
        if "id" not in self.env:
            problems.append("env needs an 'id' (e.g. env=matrix)")
        if self.policy_sharing not in SHARING:
            problems.append(f"policy_sharing={self.policy_sharing!r} is unknown; use one of {SHARING}")
        problems += at_least(self, 1, "num_envs_per_env_runner", "metrics_smoothing_episodes") + self.run_problems()
        problems += at_least(self, 0, "iterations", "num_env_runners")
        if self.rollout_fragment_length != "auto" and not (
                isinstance(self.rollout_fragment_length, int) and self.rollout_fragment_length >= 1):
            problems.append(f"rollout_fragment_length={self.rollout_fragment_length!r} must be 'auto' or an integer >= 1")
        check(problems)

    def game_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.env.items() if k != "id"}

    def numeric_game(self) -> dict[str, Any]:
        """A numeric game's settings (``{"game", "game_kwargs"}``): it has no view to set, since
        RLlib reads its observations and moves as they are, so ``view`` must stay empty."""
        if self.view:
            raise ConfigError(f"{self.env['id']} is a numeric game: RLlib reads its observations and moves as they "
                              f"are, so view.{sorted(self.view)[0]} has nothing to set; leave view out")
        return {"game": spec(self.env["id"]).id, "game_kwargs": self.game_kwargs()}

    def discrete(self) -> DiscreteConfig:
        """The discrete view a language game trains on."""
        extra = sorted({"game", "game_kwargs"} & set(self.view))
        if extra:
            raise ConfigError(f"view.{extra[0]} is set by env; leave it out of view")
        return DiscreteConfig.from_dict({**self.view, "game": self.env["id"], "game_kwargs": self.game_kwargs()})


class PolicyMapping:
    """``policy_mapping_fn`` as a picklable object (checkpoints pickle the config)."""

    def __init__(self, mapping: Mapping[str, str]):
        self.mapping = dict(mapping)

    def __call__(self, agent_id: str, episode: Any = None, **kwargs: Any) -> str:
        return self.mapping[agent_id]


def policy_mapping(cfg: RLlibConfig, env: DiscreteParallelEnv | ParallelEnv) -> dict[str, str]:
    """Each exposed seat's policy id, checked: seats that share a policy must share its spaces,
    and must be told apart (``view.role_in_obs``) when their strategy tables differ."""
    seats = env.possible_agents
    if cfg.policy_mapping is not None:
        missing = sorted(set(seats) - set(cfg.policy_mapping))
        if missing:
            raise ConfigError(f"policy_mapping has no policy for seat(s) {missing}; the learning seats: {seats}")
        mapping = {a: cfg.policy_mapping[a] for a in seats}
    else:
        mapping = {a: a if cfg.policy_sharing == "per_agent" else "shared" for a in seats}
    for module in set(mapping.values()):
        mine = [a for a in seats if mapping[a] == module]
        spaces = {str(env.action_space(a)) for a in mine}
        if len(spaces) > 1:
            fix = ("set view.uniform_actions=true" if isinstance(env, DiscreteParallelEnv)
                   else "give them a policy each (policy_sharing=per_agent)")
            raise ConfigError(f"policy {module!r} plays {mine}, whose action spaces differ ({sorted(spaces)}); {fix}")
        if not isinstance(env, DiscreteParallelEnv):  # a numeric game: its seats read and move alike
            continue
        tables = {tuple(s.name for s in env.strategies[a]) for a in mine}
        if len(tables) > 1 and not env.config.role_in_obs:
            raise ConfigError(f"policy {module!r} plays {mine}, whose strategies differ; set view.role_in_obs=true "
                             "so it can tell the seats apart")
    return mapping


def build_ppo_config(cfg: RLlibConfig):
    """The ``PPOConfig`` (new API stack) of a recipe, the seat → policy mapping, a probe env
    and the env's config (the view a checkpoint records)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    if numeric_game(cfg.env["id"]):
        env_class, env_config = SimultaneousEnv, cfg.numeric_game()
        probe = make(env_config["game"], parallel=True, **env_config["game_kwargs"])
    else:
        view = cfg.discrete()
        env_class, env_config, probe = TurnBasedEnv, view.to_dict(), DiscreteParallelEnv(view)
    mapping = policy_mapping(cfg, probe)
    model = DefaultModelConfig(fcnet_hiddens=list(cfg.model.fcnet_hiddens), fcnet_activation=cfg.model.fcnet_activation,
                               vf_share_layers=cfg.model.vf_share_layers)
    ppo = cfg.ppo
    config = (
        PPOConfig()
        .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
        .environment(env_class, env_config=env_config)
        .env_runners(num_env_runners=cfg.num_env_runners, num_envs_per_env_runner=cfg.num_envs_per_env_runner,
                     rollout_fragment_length=cfg.rollout_fragment_length)
        .learners(num_learners=0)
        .multi_agent(policies=set(mapping.values()), policy_mapping_fn=PolicyMapping(mapping))
        .rl_module(rl_module_spec=MultiRLModuleSpec(
            rl_module_specs={m: RLModuleSpec(model_config=model) for m in sorted(set(mapping.values()))}))
        .training(lr=ppo.lr, gamma=ppo.gamma, lambda_=ppo.lambda_, clip_param=ppo.clip_param,
                  entropy_coeff=ppo.entropy_coeff, vf_loss_coeff=ppo.vf_loss_coeff,
                  train_batch_size_per_learner=ppo.train_batch_size_per_learner,
                  minibatch_size=ppo.minibatch_size, num_epochs=ppo.num_epochs)
        .reporting(metrics_num_episodes_for_smoothing=cfg.metrics_smoothing_episodes)
        .debugging(seed=cfg.seed, log_level="ERROR")
    )
    return config, mapping, probe, env_config


# -- training ---------------------------------------------------------------------------------------
class RLlibTrainer:
    """An RLlib PPO run of a recipe (:class:`RLlibConfig`), through the run module: a new
    run, or ``resume=True`` from its last checkpoint (only the fields in
    :attr:`RLlibConfig.RESUMABLE` may differ). :meth:`run` trains until the iteration or time
    budget is spent and returns the metrics, one row per iteration."""

    def __init__(self, cfg: RLlibConfig, resume: bool = False, on_update: Callable[[dict], None] | None = None):
        self.cfg = cfg
        self.on_update = on_update
        self.ppo, mapping, probe, view = build_ppo_config(cfg)  # every check runs before anything is written
        tables = getattr(probe, "strategies", {})  # a numeric game's actions are its own moves
        self.described = {"view": view, "policy_mapping": mapping,
                          "strategies": {a: [s.name for s in tables[a]] for a in tables}}
        self.run_dir = cfg.open_run(resume)
        try:
            self.algo = self.ppo.build_algo()
        except BaseException:
            self.run_dir.close()
            raise
        self.iteration, self.elapsed_s = self.run_dir.update, float(self.run_dir.state["elapsed_s"])
        try:
            self.run_dir.restore(lambda checkpoint: self.algo.restore_from_path(str(checkpoint / "algorithm")))
        except BaseException:
            self.algo.stop()  # a checkpoint that does not load leaves no algorithm running, and the run closed
            self.run_dir.close()
            raise

    def run(self) -> list[dict[str, Any]]:
        cfg = self.cfg
        try:
            self.run_dir.train(lambda _: metrics_row(self.algo.train()), self.save, until=cfg.iterations,
                               every=cfg.checkpoint_every, max_minutes=cfg.max_minutes,
                               on_row=lambda row: self.on_update and self.on_update(row))
        finally:
            self.algo.stop()
        return self.run_dir.finish(f"{cfg.env['id']} (RLlib PPO)", plot=cfg.plot, prefix="return/",
                                   xlabel="iteration", ylabel="mean episode return")

    def save(self, iteration: int, elapsed_s: float) -> Path:
        """Checkpoint ``iteration``: the algorithm and the view it was trained on."""
        self.iteration, self.elapsed_s = iteration, elapsed_s
        partial = self.run_dir.begin_checkpoint(iteration)
        self.algo.save_to_path(str(partial / "algorithm"))
        atomic_write_text(partial / VIEW_FILE, json.dumps(self.described, indent=1))
        return self.run_dir.commit(partial, iteration, {"elapsed_s": elapsed_s})


def train_rllib(values: Mapping[str, Any], resume: bool = False) -> list[dict[str, Any]]:
    """Train (or resume) the recipe ``values`` (composed ``configs/rllib.yaml``); returns its
    metrics, one row per iteration."""
    return RLlibTrainer(RLlibConfig.from_dict(values), resume=resume).run()


def metrics_row(result: Mapping[str, Any]) -> dict[str, Any]:
    """One ``metrics.jsonl`` line from ``algo.train()``'s result: episode return per policy
    (``return/<policy>``) and per seat, episode length, and each policy's PPO losses."""
    runners = result.get("env_runners", {})
    row: dict[str, Any] = {}
    for key, value in runners.get("module_episode_returns_mean", {}).items():
        row[f"return/{key}"] = float(value)
    for key, value in runners.get("agent_episode_returns_mean", {}).items():
        row[f"seat_return/{key}"] = float(value)
    for key in ("episode_return_mean", "episode_len_mean", "num_episodes", "num_env_steps_sampled_lifetime"):
        if key in runners:
            row[key] = float(runners[key])
    for module, stats in result.get("learners", {}).items():
        if module.startswith("__"):
            continue
        for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss"):
            if key in stats:
                row[f"{key}/{module}"] = float(stats[key])
    return row


# -- trained agents in sparring games ---------------------------------------------------------------
def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or a run directory (its latest checkpoint), as an absolute path."""
    found = checkpoint_of(path)
    if not (found / "algorithm").is_dir():
        raise ModelNotFoundError(f"{path}: no RLlib checkpoint here (expected algorithm/ from a sparring RLlib run, "
                                 "or its run directory)")
    return found


@functools.lru_cache(maxsize=16)
def _load_module(path: str, mtime_ns: int):
    """An RLModule read once per process: a tournament builds its agents' policies per match,
    and inference leaves the module unchanged, so every copy of a policy shares one."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    module = RLModule.from_checkpoint(path)
    module.eval()
    return module


class RLlibPolicy(Policy):
    """A policy trained by :func:`train_rllib`, playing through the game's text interface.

    ``checkpoint``: a checkpoint or run directory. ``policy_id``: the RLModule to play
    (default: the one the training run mapped to the seat, or the only one). ``game`` and
    ``encoder`` default to the view it was trained on; ``view`` overrides other view fields
    (e.g. for a checkpoint made without a saved view description). ``explore=True`` samples the
    strategy from the policy's distribution instead of taking the most likely one.
    """

    def __init__(self, checkpoint: str | Path, policy_id: str | None = None, game: str | None = None,
                 encoder: str | None = None, view: Mapping[str, Any] | None = None, explore: bool = False,
                 seed: int | None = None, name: str | None = None):
        self.checkpoint = resolve_checkpoint(checkpoint)
        saved = self.checkpoint / VIEW_FILE
        described = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else {}
        values = {**described.get("view", {}), **dict(view or {})}
        values |= {k: v for k, v in (("game", game), ("encoder", encoder)) if v is not None}
        if "game" not in values:
            raise ConfigError(f"{self.checkpoint} has no {VIEW_FILE}; pass game= (and the view's other settings)")
        self.numeric = numeric_game(values["game"])
        # A numeric game reads the chosen index as its move: no view, no strategy table, no text to encode.
        self.view = None if self.numeric else DiscreteConfig.from_dict(values)
        self.game = spec(values["game"]).id
        kwargs = dict(values.get("game_kwargs") or {})
        rules = make(self.game, parallel=True, **(kwargs if self.numeric else self.view.game_kwargs)).game
        self.strategies = {} if self.numeric else strategies(self.game, rules)
        self.seats = tuple(rules.possible_agents)
        for seat, names in described.get("strategies", {}).items():
            now = [s.name for s in self.strategies.get(seat, [])]
            if names != now:  # an action index means the strategy it meant in training, or nothing
                raise ConfigError(f"{self.game}'s strategies for {seat} are {now}, but {self.checkpoint} was "
                                 f"trained with {names}; play it with the sparring version it was trained with")
        self.encoder = None if self.numeric else ObservationEncoder(self.view, rules.possible_agents, rules.max_turns)
        self.mapping = described.get("policy_mapping", {})
        modules_dir = self.checkpoint / "algorithm" / "learner_group" / "learner" / "rl_module"
        available = sorted(p.name for p in modules_dir.iterdir() if p.is_dir()) if modules_dir.is_dir() else []
        if policy_id is not None and policy_id not in available:
            raise ConfigError(f"policy_id={policy_id!r} is not in {self.checkpoint}; its policies: {available}")
        self.policy_id = policy_id
        self.modules = {m: _load_module(str(modules_dir / m), (modules_dir / m).stat().st_mtime_ns)
                        for m in ([policy_id] if policy_id else available)}
        for module_id, module in self.modules.items():
            size = module.observation_space.shape[0]
            if self.encoder is not None and size != self.encoder.size:
                raise ConfigError(f"policy {module_id!r} reads {size} numbers, but the view "
                                 f"({self.view.encoder}, dims={self.view.dims}) makes {self.encoder.size}; "
                                 "pass the encoder and view settings it was trained with")
        self.explore = explore
        self.rng = np.random.default_rng(seed)
        self.name = name or f"rllib({policy_id or '/'.join(self.modules)})"

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)
        for i, strategy in enumerate(s for seat in self.strategies.values() for s in seat):
            strategy.policy.seed(None if seed is None else seed + i + 1)

    def module_for(self, agent: str) -> str:
        if self.policy_id is not None:
            return self.policy_id
        if self.mapping.get(agent) in self.modules:
            return self.mapping[agent]
        if len(self.modules) == 1:
            return next(iter(self.modules))
        raise ConfigError(f"{self.checkpoint} holds policies {sorted(self.modules)} and none was trained for seat "
                         f"{agent!r}; pass policy_id=")

    def choose(self, agent: str, observation: Mapping[str, Any]) -> int:
        """The strategy index the policy picks for this observation."""
        import torch

        seats = self.seats if self.numeric else self.strategies
        if agent not in seats:
            raise ConfigError(f"seat {agent!r} is not a seat of {self.game}; its seats: {sorted(seats)}")
        if self.numeric:
            vector = np.asarray(observation, dtype=np.float32).reshape(-1)
            size = self.modules[self.module_for(agent)].observation_space.shape[0]
            if vector.size != size:
                raise ConfigError(f"the policy reads {size} numbers, but this {self.game} observation has "
                                  f"{vector.size}; play it on the game settings it was trained with")
        else:
            vector = self.encoder.encode({agent: observation})[agent]
        with torch.no_grad():
            out = self.modules[self.module_for(agent)].forward_inference({"obs": torch.from_numpy(vector[None])})
        logits = out["action_dist_inputs"][0].double().numpy()
        if not self.explore:
            return int(np.argmax(logits))
        p = np.exp(logits - logits.max())
        return int(self.rng.choice(len(p), p=p / p.sum()))

    async def act(self, agent: str, observation: dict[str, Any]) -> Action:
        index = self.choose(agent, observation)
        if self.numeric:
            return Action(str(index))
        options = self.strategies[agent]  # a shared policy's extra indices alias, as in the view
        return Action(options[index % len(options)].render(agent, observation))
