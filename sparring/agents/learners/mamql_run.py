"""Inverse RL as a run: ``sparring train train=mamql demonstrations=FILE``, and its policies.

:class:`IRLRunConfig` / :class:`IRLRun` learn from a file of demonstrations (``sparring
record``, JSONL or Parquet) with MAMQL or a baseline (:mod:`~sparring.agents.learners.mamql`).
A numeric game's observations are the critics' input as they are; a language game's text goes
through an encoder (MiniLM sentence embeddings by default) and its moves through the move
index the game registers (``negotiation-v0``: every split, accept, walk away, with each
observation's legal ones as a mask). It goes through the run module: ``config.json``, one ``metrics.jsonl`` row per update (the learner's
losses and, every ``eval_every`` updates, the true return of its policies over ``eval_games``
games of the env), ``checkpoints/update-N/learner.pt`` (networks, optimiser, step size,
generators: a killed run resumes where its last checkpoint was) and ``learning_curve.png``.

:class:`IRLPolicy` (``{policy: irl, checkpoint: RUN_OR_CHECKPOINT}``) plays the learned
Boltzmann policies in the game they were learned on, so they sit in arena tournaments.
:class:`RecoveredReward` scores an LLM's moves in a language game with the recovered reward,
for a self-play run to train on (``reward_model=RUN``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparring.agents.base import Action, Policy
from sparring.agents.learners.mamql import (
    LEARNERS,
    METHODS,
    Demonstrations,
    IRLConfig,
    build_learner,
    env_rollout,
)
from sparring.agents.resolve import import_object
from sparring.agents.trajectories import demonstrations_file, read_transitions, record_transitions
from sparring.config import at_least, check
from sparring.envs.parsing import answer_in_format
from sparring.envs.registry import make, spec
from sparring.errors import ConfigError, DataError, NotFoundError, UnknownPolicyError
from sparring.runs import RunSettings, checkpoint_of, resolve_model

LEARNER_FILE = "learner.pt"


@dataclass(frozen=True)
class IRLRunConfig(RunSettings):
    """An inverse-RL run: the game the demonstrations come from, the file, the method and its
    settings (``irl``), the budgets and the run directory."""

    env: dict[str, Any] = field(default_factory=dict)
    """The game (``id`` plus arguments): a numeric simultaneous-move game (gems-v0), or a
    turn-based language game that registers a move index (negotiation-v0)."""
    demonstrations: str = ""
    """A ``sparring record`` file (``.jsonl`` or ``.parquet``) of every agent's steps."""
    trainer: str = "mamql"
    train: str = ""
    """The recipe (``configs/train/NAME.yaml``, ``train=NAME``) the run was composed from."""
    method: str = "mamql"
    """``mamql``, ``iq_learn`` (independent, per agent) or ``bc``."""
    irl: IRLConfig = field(default_factory=IRLConfig)
    """The learner's settings; ``irl.steps`` is replaced by ``updates × steps_per_update``."""
    encoder: str | None = None
    """How a language game's observation text becomes the critics' input: None or ``minilm``
    (all-MiniLM-L6-v2 sentence embeddings of the whole text, up to 512 tokens), ``llm`` or
    ``llm:MODEL`` (a causal LM's own features of the text, :func:`llm_features`; the shipped
    tiny model by default) or ``module:function`` mapping a list of texts to feature rows (e.g.
    ``sparring.envs.negotiation:position_features``). Numeric games ignore it."""
    max_episodes: int | None = None
    """Learn from the file's first N games (None: all)."""
    updates: int = 20
    steps_per_update: int = 100
    eval_every: int = 5
    """Play ``eval_games`` games with the learned policies every this many updates (0: never)."""
    eval_games: int = 20
    run_dir: str = "runs/mamql"
    checkpoint_every: int = 5

    RESUMABLE = (*RunSettings.RESUMABLE, "updates", "eval_every", "eval_games")

    def __post_init__(self) -> None:
        problems = []
        if "id" not in self.env:
            problems.append("env needs an 'id' (e.g. env=gems)")
        elif not spec(self.env["id"]).numeric:
            if spec(self.env["id"]).moves is None:
                problems.append(f"{self.env['id']} registers no move index, which inverse RL on a language game "
                                "needs (its moves as a finite set); negotiation-v0 has one")
            if self.irl.online:
                problems.append(f"irl.online=true rolls out numeric simultaneous-move games; learn "
                                f"{self.env['id']}'s demonstrations offline")
        if not self.demonstrations:
            problems.append("demonstrations= is empty: give the file `sparring record` wrote")
        if self.method not in METHODS:
            problems.append(f"method={self.method!r} is unknown; use one of {', '.join(METHODS)}")
        problems += at_least(self, 1, "updates", "steps_per_update", "eval_games", "max_episodes")
        problems += at_least(self, 0, "eval_every") + self.run_problems()
        check(problems)

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.env.items() if k != "id"}

    def learner_config(self) -> IRLConfig:
        return IRLConfig.from_dict({**self.irl.to_dict(), "steps": self.updates * self.steps_per_update,
                                    "seed": self.seed})


def _make_env(cfg: IRLRunConfig) -> Callable[[], Any]:
    return lambda: make(cfg.env["id"], parallel=True, **cfg.env_kwargs)


def cached(embed: Callable[[list[str]], np.ndarray]) -> Callable[[list[str]], np.ndarray]:
    """``embed`` keeping every text's row (the same texts recur across games and learners)."""
    store: dict[str, np.ndarray] = {}

    def read(texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in store]
        if new:
            store.update(zip(new, np.asarray(embed(new), dtype=np.float32)))
        return np.stack([store[t] for t in texts])

    return read


def llm_features(model: str = "tiny", batch: int = 16) -> Callable[[list[str]], np.ndarray]:
    """A causal LM's own features of each text (``model``: anything
    :func:`~sparring.runs.resolve_model` takes): its last layer's hidden state at the last token
    and averaged over the tokens, each scaled to unit length, side by side (``[N, 2 × hidden]``).
    The text is one user message of the model's chat template, as in play, without a system
    prompt or the ``<think>`` prefill."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model(model)
    tokenizer = source.load(AutoTokenizer)
    network = source.load(AutoModelForCausalLM, dtype=torch.float32).eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    @torch.no_grad()
    def embed(texts: list[str]) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), batch):
            ids = [tokenizer.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True,
                                                 tokenize=True, return_dict=False)
                   if getattr(tokenizer, "chat_template", None) else tokenizer(t)["input_ids"]
                   for t in texts[start:start + batch]]
            width = max(len(i) for i in ids)
            tokens = torch.tensor([i + [pad] * (width - len(i)) for i in ids])
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
            hidden = network(input_ids=tokens, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
            last = hidden[torch.arange(len(ids)), mask.sum(1) - 1]
            mean = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            unit = torch.nn.functional.normalize
            rows.append(torch.cat([unit(last, dim=-1), unit(mean, dim=-1)], -1).numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 2 * network.config.hidden_size), dtype=np.float32)

    return embed


def text_reader(cfg: IRLRunConfig, env: Any) -> tuple[Callable[[list[str]], np.ndarray], Any] | tuple[None, None]:
    """A language game's encoder and move index, built for ``env``'s settings (None, None for a
    numeric game)."""
    game = spec(cfg.env["id"])
    if game.numeric:
        return None, None
    moves = import_object(game.moves)(env.unwrapped.game.config)
    if cfg.encoder in (None, "minilm"):
        from sparring.judges.embedding import minilm_embedder

        return cached(minilm_embedder(max_tokens=512)), moves
    if cfg.encoder == "llm" or cfg.encoder.startswith("llm:"):
        return cached(llm_features(cfg.encoder.partition(":")[2] or "tiny")), moves
    try:
        return cached(import_object(cfg.encoder)), moves
    except UnknownPolicyError as e:
        raise ConfigError(f"encoder={cfg.encoder!r}: {e}") from None


def true_return(learner: Any, make_env: Callable[[], Any], games: int, seed: int,
                embed: Callable[[list[str]], np.ndarray] | None = None, moves: Any = None) -> dict[str, float]:
    """Each agent's mean true return over ``games`` games of the learner's sampled policies
    (a language game's: read through ``embed`` and ``moves``)."""
    if learner.turn_based:
        if embed is None or moves is None:
            raise ConfigError("a turn-based language game's learner plays through its encoder and move index: "
                              "pass embed= and moves=")
        seats = {a: TextIRLPolicy(learner, embed, moves) for a in learner.agents}
        rows = record_transitions(make_env, seats, range(seed * 100_003, seed * 100_003 + games))
        return {a: sum(t.reward for t in rows if t.agent == a) / games for a in learner.agents}
    rng = np.random.default_rng(seed)
    totals: dict[str, float] = {}
    for game in range(games):
        env = make_env()
        obs, _ = env.reset(seed=seed * 100_003 + game)
        while env.agents:
            probs = learner.policies({a: np.asarray(obs[a], dtype=np.float32)[None] for a in learner.agents})
            moves = {a: int(rng.choice(len(p[0]), p=p[0] / p[0].sum())) for a, p in probs.items()}
            obs, rewards, _, _, _ = env.step(moves)
            for a, r in rewards.items():
                totals[a] = totals.get(a, 0.0) + float(r)
    return {a: v / games for a, v in totals.items()}


class IRLRun:
    """Learns from demonstrations through the run module (see the module docstring)."""

    def __init__(self, cfg: IRLRunConfig, resume: bool = False, on_update: Callable[[dict], None] | None = None):
        self.cfg = cfg
        self.on_update = on_update
        path = demonstrations_file(cfg.demonstrations)
        self.make_env = _make_env(cfg)
        probe = self.make_env()
        self.embed, self.moves = text_reader(cfg, probe)
        rows = read_transitions(path)
        strangers = sorted({t.agent for t in rows} - set(probe.possible_agents))
        if strangers:
            raise DataError(f"{path}: its steps are of agents {strangers}, which {cfg.env['id']} does not have (its "
                            f"agents: {list(probe.possible_agents)}); it was recorded in another game: train on "
                            "demonstrations of this one (sparring record GAME ...)")
        if cfg.max_episodes is not None:  # before any encoding: the rest is never read
            first = list(dict.fromkeys(t.episode for t in rows))[: cfg.max_episodes]
            rows = [t for t in rows if t.episode in set(first)]
        if self.moves is None:
            demos = Demonstrations.from_transitions(rows, probe.possible_agents)
            num_actions = {a: int(probe.action_space(a).n) for a in probe.possible_agents}
        else:
            demos = Demonstrations.from_turns(rows, self.embed, self.moves, probe.possible_agents)
            num_actions = {a: len(self.moves) for a in probe.possible_agents}
            if demos.skipped > len(demos):
                raise DataError(f"{path}: {demos.skipped} of {demos.skipped + len(demos)} demonstrated outputs make no "
                                f"valid move of {cfg.env['id']} with these settings; set env.* as it was recorded")
        if cfg.max_episodes is not None:
            demos = demos.episodes(cfg.max_episodes)
        for agent in demos.agents if self.moves is None else ():
            if demos.obs[agent].shape[1:] != probe.observation_space(agent).shape:
                raise ConfigError(f"{path}: {agent}'s observations have shape {demos.obs[agent].shape[1:]}, but "
                                  f"{cfg.env['id']} with these settings gives {probe.observation_space(agent).shape}; "
                                  "set env.* as the demonstrations were recorded")
        self.demos = demos
        self.run_dir = cfg.open_run(resume)
        try:  # whatever fails from here on leaves the run closed
            self.learner = build_learner(cfg.method, cfg.learner_config(), demos, num_actions)
            rollout = env_rollout(self.make_env, cfg.irl.online_episodes, cfg.seed) if cfg.irl.online else None
            self.learner.prepare(demos, rollout=rollout)
            self.update = self.run_dir.update
            self.run_dir.restore(lambda checkpoint: self.learner.load_state_dict(
                torch.load(checkpoint / LEARNER_FILE, weights_only=True)))
        except BaseException:
            self.close()
            raise

    def step(self, update: int) -> dict[str, Any]:
        logs = self.learner.train_steps(self.cfg.steps_per_update)
        row: dict[str, Any] = {f"loss/{k}": v for k, v in logs.items()}
        if self.cfg.eval_every and update % self.cfg.eval_every == 0:
            row |= {f"return/{a}": v for a, v in
                    true_return(self.learner, self.make_env, self.cfg.eval_games, self.cfg.seed + update,
                                self.embed, self.moves).items()}
        self.update = update
        return row

    def save(self, update: int, elapsed_s: float) -> Path:
        partial = self.run_dir.begin_checkpoint(update)
        torch.save(self.learner.state_dict(), partial / LEARNER_FILE)
        return self.run_dir.commit(partial, update, {"elapsed_s": elapsed_s})

    def run(self) -> list[dict[str, Any]]:
        cfg = self.cfg
        self.run_dir.train(self.step, self.save, until=cfg.updates, every=cfg.checkpoint_every,
                           max_minutes=cfg.max_minutes, on_row=lambda row: self.on_update and self.on_update(row))
        return self.run_dir.finish(f"{cfg.env['id']} ({cfg.method})", plot=cfg.plot, prefix="return/",
                                   xlabel="update", ylabel="true return of the learned policies")

    def close(self) -> None:
        self.run_dir.close()


@dataclass
class LearnedModel:
    """What an inverse-RL run learned, loaded from one of its checkpoints."""

    cfg: IRLRunConfig
    learner: Any
    env: Any
    """A Parallel env of the game, with the run's settings."""
    embed: Callable[[list[str]], np.ndarray] | None
    moves: Any
    """A language game's move index (None: a numeric game)."""
    run: Path


def load_learned(checkpoint: str | Path) -> LearnedModel:
    """The learner of an inverse-RL run (its directory: the latest checkpoint) or checkpoint."""
    found = checkpoint_of(checkpoint)
    if not (found / LEARNER_FILE).is_file():
        raise NotFoundError(f"{checkpoint}: no {LEARNER_FILE} here (a checkpoint or run directory of "
                            "`sparring train train=mamql`)")
    run = found.parent.parent
    cfg = IRLRunConfig.from_dict(json.loads((run / "config.json").read_text(encoding="utf-8")))
    env = _make_env(cfg)()
    agents = tuple(env.possible_agents)
    embed, moves = text_reader(cfg, env)
    if moves is None:
        dims = {a: int(env.observation_space(a).shape[0]) for a in agents}
        sizes = {a: int(env.action_space(a).n) for a in agents}
    else:
        first = env.reset(seed=0)[0][agents[0]]["text"]
        dims, sizes = ({a: int(embed([first]).shape[1]) for a in agents}, {a: len(moves) for a in agents})
    learner = LEARNERS[cfg.method](cfg.learner_config(), agents, dims, sizes, turn_based=moves is not None)
    learner.load_networks(torch.load(found / LEARNER_FILE, weights_only=True))
    return LearnedModel(cfg, learner, env, embed, moves, run)


class IRLPolicy(Policy):
    """The Boltzmann policy an inverse-RL run learned, for the game it learned on: samples its
    move (``greedy=True``: the most likely one) and writes the move's index (a language game:
    the move's text, as :class:`TextIRLPolicy`)."""

    def __init__(self, checkpoint: str | Path, greedy: bool = False, seed: int | None = None,
                 name: str | None = None):
        model = load_learned(checkpoint)
        cfg, env, moves = model.cfg, model.env, model.moves
        self.learner = model.learner
        self.game, self.greedy = spec(cfg.env["id"]).id, greedy
        self.name = name or f"{cfg.method}({model.run.name})"
        self.text = None if moves is None else TextIRLPolicy(self.learner, model.embed, moves, greedy, seed,
                                                             self.name)
        self.rng = np.random.default_rng(seed)
        self.view_of_other = None
        if self.text is not None:
            return
        # MAMQL's policies are an equilibrium of every agent's critic, so it needs the others'
        # views of the moment; the baselines read the acting agent's alone.
        self.view_of_other = getattr(env.unwrapped.game, "view_of_other", None)
        if cfg.method == "mamql" and self.view_of_other is None:
            raise ConfigError(f"{self.game} cannot derive the other agent's observation from one agent's, which "
                              "MAMQL's policies need; play the iq_learn or bc baseline instead")

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)
        if self.text is not None:
            self.text.seed(seed)

    def probabilities(self, agent: str, observation: Any) -> np.ndarray:
        """The policy's move probabilities at ``observation`` (a language game's: over its move
        index, from the observation's text)."""
        if self.text is not None:
            return self.text.probabilities(agent, observation["text"] if isinstance(observation, Mapping)
                                           else observation)
        if agent not in self.learner.agents:
            raise ConfigError(f"seat {agent!r} is not a seat of {self.game}; its seats: {list(self.learner.agents)}")
        mine = np.asarray(observation, dtype=np.float32).reshape(-1)
        theirs = self.view_of_other(mine) if self.view_of_other is not None else mine
        obs = {a: (mine if a == agent else theirs)[None] for a in self.learner.agents}
        return self.learner.policies(obs)[agent][0]

    async def act(self, agent: str, observation: Mapping[str, Any]) -> Action:
        if self.text is not None:
            return await self.text.act(agent, observation)
        p = self.probabilities(agent, observation)
        move = _draw(p, self.greedy, self.rng)
        return Action(str(move))


def _draw(p: np.ndarray, greedy: bool, rng: np.random.Generator) -> int:
    """A move index from probabilities ``p``: the most likely one, or a sample."""
    return int(p.argmax()) if greedy else int(rng.choice(len(p), p=p / p.sum()))


class TextIRLPolicy(Policy):
    """The Boltzmann policy of a learner trained on a language game's demonstrations
    (:meth:`~sparring.agents.learners.mamql.Demonstrations.from_turns`), playing that game: it
    reads its observation through the same ``embed``, samples one of the legal moves of
    ``moves`` (``greedy=True``: the most likely) and writes that move's text, in the game's
    hidden-CoT format when it asks for one. Turn-based games only: nobody else moves with it,
    so the acting agent's observation is all its policy reads."""

    def __init__(self, learner: Any, embed: Callable[[list[str]], np.ndarray], moves: Any, greedy: bool = False,
                 seed: int | None = None, name: str | None = None):
        if not learner.turn_based:
            raise ConfigError("TextIRLPolicy plays learners of turn-based language games; a numeric game's "
                              "learner plays as IRLPolicy")
        self.learner, self.embed, self.moves, self.greedy = learner, embed, moves, greedy
        self.texts = list(moves.texts())
        self.rng = np.random.default_rng(seed)
        self.name = name or learner.method

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def probabilities(self, agent: str, text: str) -> np.ndarray:
        if agent not in self.learner.agents:
            raise ConfigError(f"seat {agent!r} is not one the learner knows: {list(self.learner.agents)}")
        features = np.asarray(self.embed([text]), dtype=np.float32)
        legal = np.asarray(self.moves.legal(text), dtype=bool)[None]
        # The other agent waits: its inputs are placeholders the policy of ``agent`` never reads.
        return self.learner.policies({a: features for a in self.learner.agents},
                                     {a: legal for a in self.learner.agents})[agent][0]

    async def act(self, agent: str, observation: Mapping[str, Any]) -> Action:
        p = self.probabilities(agent, observation["text"])
        move = _draw(p, self.greedy, self.rng)
        chosen = self.texts[move]
        return Action(answer_in_format(observation, f"My learned policy picks {chosen}.", chosen))


class RecoveredReward:
    """The reward an inverse-RL run recovered on a turn-based language game, to train an LLM
    on by RL (``reward_model=RUN`` of a self-play run): inverse RL, then RL, in one suite.

    A move aₖ at the agent's observation sₖ earns r̄(sₖ, aₖ) = Q̄(sₖ, aₖ) − γ·V̄(sₖ₊₁), where sₖ₊₁
    is its next observation in the game, V̄ the soft value over the legal moves there, and
    V̄ = 0 after its last move (the game is over). An output that makes no move of the index
    earns the worst legal move's Q̄ at sₖ in place of Q̄(sₖ, aₖ): it is worth no more than any
    move. Each move's training reward is its return over the agent's own moves from there on,
    Σⱼ γʲ⁻ᵏ r̄ⱼ, with the run's γ."""

    def __init__(self, checkpoint: str | Path):
        model = load_learned(checkpoint)
        if model.moves is None:
            raise ConfigError(f"{checkpoint}: a reward recovered on numeric {model.cfg.env['id']} cannot score an "
                              "LLM's text; learn from a language game's demonstrations (train=mamql_negotiation)")
        if model.cfg.method == "bc":
            raise ConfigError(f"{checkpoint}: behaviour cloning recovers no reward; use a run of method=mamql or "
                              "iq_learn")
        self.learner, self.embed, self.moves = model.learner, model.embed, model.moves
        self.env = model.cfg.env
        """The game (``id`` and settings) the reward was learned on."""
        self.gamma = float(model.cfg.irl.gamma)

    def move_rewards(self, agent: str, steps: list[tuple[str, str]]) -> np.ndarray:
        """r̄ of each of ``agent``'s moves in one game, given in order as (observation text,
        output)."""
        if not steps:
            return np.zeros(0)
        features = np.asarray(self.embed([text for text, _ in steps]), dtype=np.float32)
        legal = np.stack([np.asarray(self.moves.legal(text), dtype=bool) for text, _ in steps])
        q = self.learner.marginal_q({a: features for a in self.learner.agents},
                                    {a: legal for a in self.learner.agents})[agent]
        lam = self.learner.config.lam
        top = np.where(legal, q, -np.inf).max(-1)
        value = top + np.log(np.exp(lam * np.where(legal, q - top[:, None], -np.inf)).sum(-1)) / lam
        worst = np.where(legal, q, np.inf).min(-1)
        chosen = [self.moves.index(text, output) for text, output in steps]
        taken = np.array([worst[k] if c is None else q[k, c] for k, c in enumerate(chosen)])
        following = np.append(value[1:], 0.0)
        return taken - self.gamma * following

    def returns(self, turns: list[Any]) -> dict[int, float]:
        """Each move's return Σⱼ γʲ⁻ᵏ r̄ⱼ over its agent's moves from there on, by its index
        in ``turns`` (a played game's :class:`~sparring.agents.rollout.Turn` s)."""
        out: dict[int, float] = {}
        for agent in dict.fromkeys(t.agent for t in turns):
            indices = [i for i, t in enumerate(turns) if t.agent == agent and t.action is not None]
            rewards = self.move_rewards(agent, [(turns[i].observation, turns[i].action) for i in indices])
            ahead = 0.0
            for i, r in zip(reversed(indices), rewards[::-1]):
                ahead = float(r) + self.gamma * ahead
                out[i] = ahead
        return out


def train_irl(values: Mapping[str, Any], resume: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) an inverse-RL recipe; its metrics, one row per update."""
    run = IRLRun(IRLRunConfig.from_dict(dict(values)), resume=resume)
    try:
        return run.run()
    finally:
        run.close()


__all__ = ["IRLPolicy", "IRLRun", "IRLRunConfig", "LearnedModel", "RecoveredReward", "TextIRLPolicy", "load_learned",
           "train_irl", "true_return"]
