"""Trajectories: one training sample per agent turn, demonstrations, and their files on disk.

A :class:`Sample` is what a learner needs from one move of an LLM seat: the token ids the
model saw and wrote, the logprobs it sampled them with, a loss mask, the agent's terminal
reward and reward terms, and where it came from (game, seed, role, policy, weights version).
The loss mask is 1 exactly on the tokens the model generated in that turn: the prompt (the
environment's text, the other agent's words, the pre-filled ``<think>``) is never trained on.

A :class:`Transition` is what inverse RL needs from one step of one agent: what it observed,
what it did, its reward, what it observed next and whether the game ended there.
:func:`record_transitions` plays games between policies and records them;
:func:`demonstrations_of` turns a language game's recorded moves into supervised targets.

Samples and transitions round-trip through JSONL (``.jsonl``) or Parquet (``.parquet``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sparring.agents.base import Policy
from sparring.agents.rollout import Episode, act, reseed, to_act
from sparring.envs import Demonstration
from sparring.errors import ConfigError, DataError, NotFoundError
from sparring.paths import text_file
from sparring.runs import atomic_write


@dataclass
class Sample:
    game_id: str
    """Which game (unique within a run, e.g. ``u3-g17``)."""
    seed: int | None
    role: str
    """The seat (agent name) that made the move."""
    policy: str
    """The pool policy that generated it."""
    turn: int
    """Index of the move within the game."""
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    """Sampling logprob of each completion token."""
    reward: float
    """The role's total reward for the game (terminal, undiscounted)."""
    reward_terms: dict[str, float] = field(default_factory=dict)
    tie: bool = False
    """The judge could not score the game: trainers drop it."""
    invalid: str | None = None
    """Why the move was invalid, if it was."""
    weights_version: int = 0
    finish_reason: str = "stop"

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    @property
    def loss_mask(self) -> list[int]:
        """1 on the tokens this turn generated, 0 on everything the model was shown."""
        return [0] * len(self.prompt_ids) + [1] * len(self.completion_ids)

    def __post_init__(self) -> None:
        if len(self.logprobs) != len(self.completion_ids):
            raise DataError(
                f"sample {self.game_id}/{self.role}: {len(self.logprobs)} logprobs for "
                f"{len(self.completion_ids)} completion tokens"
            )


def samples_from_episode(episode: Episode, game_id: str, roles: Iterable[str] | None = None) -> list[Sample]:
    """The samples of an episode's LLM moves (turns that carry a generation record), for the
    given roles (default: every role)."""
    wanted = None if roles is None else set(roles)
    samples = []
    for index, turn in enumerate(episode.turns):
        generation = turn.generation
        if generation is None or (wanted is not None and turn.agent not in wanted):
            continue
        info = episode.final_infos.get(turn.agent, {})
        samples.append(Sample(
            game_id=game_id,
            seed=episode.seed,
            role=turn.agent,
            policy=generation.policy or episode.policies[turn.agent],
            turn=index,
            prompt_ids=list(generation.prompt_ids),
            completion_ids=list(generation.completion_ids),
            logprobs=list(generation.logprobs),
            reward=float(episode.rewards[turn.agent]),
            reward_terms=dict(episode.reward_terms.get(turn.agent, {})),
            tie=bool(info.get("tie", False)),
            invalid=turn.invalid,
            weights_version=generation.weights_version,
            finish_reason=generation.finish_reason,
        ))
    return samples


def write_samples(path: str | Path, samples: Sequence[Sample]) -> Path:
    """Write samples to ``path`` (``.jsonl`` or ``.parquet``); returns the path. The file is
    written next to its final name and moved into place, so a killed writer leaves no
    half-written file."""
    return _write_rows(path, [asdict(s) for s in samples])


def read_samples(path: str | Path) -> list[Sample]:
    return _read_rows(path, Sample)


@dataclass
class Transition:
    """One step of one agent: ``(obs, action, reward, next_obs, done)`` and where it came from.

    Observations are a numeric game's vector (a list of numbers) or a language game's text;
    the action is the move the game read (a numeric game's index, or the text). ``done`` is a
    true end of the game (nothing follows: a learner bootstraps nothing); ``truncated`` is a
    time limit (the game could have gone on). In a turn-based game an agent's step runs from
    one of its moves to its next; rewards earned while it waits are credited to that step."""

    episode: str
    seed: int | None
    step: int
    """The game step the agent moved at (a joint step in simultaneous games)."""
    agent: str
    policy: str
    obs: Any
    action: Any
    reward: float
    next_obs: Any
    done: bool
    truncated: bool = False
    reward_terms: dict[str, float] = field(default_factory=dict)


def demonstrations_of(transitions: Iterable[Transition], hidden_cot: bool,
                      roles: Iterable[str] | None = None) -> list[Demonstration]:
    """A language game's recorded moves as demonstrations for supervised learning (behaviour
    cloning, a learner's anchor): each move's observation text and the output written there,
    prompted as in play (``hidden_cot``: the game's format, so the prompt is pre-filled with
    ``<think>``), for ``roles`` (default: every agent). Moves the game penalised as invalid
    (a negative ``invalid`` reward term) are left out: they are not worth imitating."""
    wanted = None if roles is None else set(roles)
    out = []
    for t in transitions:
        if not isinstance(t.obs, str) or not isinstance(t.action, str):
            raise DataError(f"episode {t.episode}: {t.agent}'s step holds a numeric game's observation or move; "
                            "supervised learning of an LLM needs a language game's recorded text")
        if (wanted is None or t.agent in wanted) and t.reward_terms.get("invalid", 0.0) >= 0:
            out.append(Demonstration(t.agent, {"text": t.obs, "hidden_cot": hidden_cot}, t.action))
    return out


def write_transitions(path: str | Path, transitions: Sequence[Transition]) -> Path:
    """Write transitions to ``path`` (``.jsonl`` or ``.parquet``), atomically as samples are."""
    return _write_rows(path, [asdict(t) for t in transitions])


def read_transitions(path: str | Path) -> list[Transition]:
    return _read_rows(path, Transition)


def demonstrations_file(value: str) -> Path:
    """The recorded file a recipe's ``demonstrations=`` names, which must exist."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise NotFoundError(f"demonstrations={value}: no such file (write one with `sparring record`)")
    return path


def _plain(observation: Any) -> Any:
    if isinstance(observation, dict):
        return observation["text"]
    if hasattr(observation, "tolist"):
        return observation.tolist()
    return observation


async def record_episode(env: Any, seats: dict[str, Policy], seed: int | None, episode: str,
                         policy_seed: int | None = None) -> list[Transition]:
    """Play one game of a Parallel env between ``seats`` (reseeded as :func:`~sparring.agents.rollout.play`
    does) and return every agent's transitions in order."""
    missing = set(env.possible_agents) - set(seats)
    if missing:
        raise ConfigError(f"no policy for seat(s) {sorted(missing)}; seats given: {sorted(seats)}")
    reseed(seats, env.possible_agents, seed, policy_seed)
    observations, _ = env.reset(seed=seed)
    out: list[Transition] = []
    last: dict[str, int] = {}
    step = 0
    while env.agents:
        acting = [a for a in env.agents if to_act(observations[a])]
        moves = await asyncio.gather(*(act(seats[a], a, observations[a]) for a in acting))
        joint = {a: m.text for a, m in zip(acting, moves)}
        following, rewards, terminations, truncations, infos = env.step(joint)
        over = not env.agents
        for agent in acting:
            if agent in last:  # its previous step runs to this move: it observed this before moving
                out[last[agent]].next_obs = _plain(observations[agent])
            info = infos.get(agent, {})
            last[agent] = len(out)
            out.append(Transition(
                episode, seed, step, agent, seats[agent].name, _plain(observations[agent]),
                info.get("action", joint[agent]), float(rewards.get(agent, 0.0)), _plain(following[agent]),
                bool(terminations.get(agent)), bool(truncations.get(agent)), dict(info.get("reward_terms", {}))))
        for agent, reward in rewards.items():  # waiting agents: credit their last step
            if agent in acting or agent not in last:
                continue
            mine = out[last[agent]]
            mine.reward += float(reward)
            for name, value in infos.get(agent, {}).get("reward_terms", {}).items():
                mine.reward_terms[name] = mine.reward_terms.get(name, 0.0) + float(value)
            if over or terminations.get(agent) or truncations.get(agent):
                mine.next_obs = _plain(following[agent])
                mine.done, mine.truncated = bool(terminations.get(agent)), bool(truncations.get(agent))
        observations = following
        step += 1
    return out


def record_transitions(make_env: Any, seats: dict[str, Policy], seeds: Iterable[int],
                       prefix: str = "episode") -> list[Transition]:
    """Record one game per seed (a Parallel env from ``make_env()``), games named ``{prefix}-{seed}``."""
    async def run() -> list[Transition]:
        out: list[Transition] = []
        for seed in seeds:
            out += await record_episode(make_env(), seats, seed, f"{prefix}-{seed}")
        return out

    return asyncio.run(run())


def _write_rows(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    path = Path(path)
    kind = _kind(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(partial: Path) -> None:
        if kind == "jsonl":
            with partial.open("w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist([{**r, "reward_terms": json.dumps(r["reward_terms"])} for r in rows])
            pq.write_table(table, partial)

    atomic_write(path, write)
    return path


def _read_rows(path: str | Path, kind_of: type) -> list[Any]:
    path = Path(path)
    kind = _kind(path)
    if not path.is_file():
        raise NotFoundError(f"no trajectory file at {path}")
    if kind == "jsonl":
        rows: list[dict[str, Any]] = []
        with text_file(path) as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{number}: not a JSON line ({e})") from e
    else:
        rows = _parquet_rows(path)
    names = [f.name for f in fields(kind_of)]
    required = [f.name for f in fields(kind_of) if f.default is MISSING and f.default_factory is MISSING]
    out = []
    for number, row in enumerate(rows, 1):
        missing = [name for name in required if name not in row]
        if missing:
            raise DataError(f"{path}: row {number} lacks {missing}")
        out.append(kind_of(**{k: v for k, v in row.items() if k in names}))
    return out


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable Parquet file ({e})") from e
    for number, row in enumerate(rows, 1):
        try:
            row["reward_terms"] = json.loads(row["reward_terms"]) if "reward_terms" in row else {}
        except (TypeError, json.JSONDecodeError) as e:
            raise DataError(f"{path}: row {number}: reward_terms is not JSON ({e})") from e
    return rows


def _kind(path: Path) -> str:
    if path.suffix == ".jsonl":
        return "jsonl"
    if path.suffix == ".parquet":
        return "parquet"
    raise DataError(f"{path}: trajectory files end in .jsonl or .parquet")
