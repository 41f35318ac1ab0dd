"""The rules of the routing game: a router answers a question, asking priced experts on the way."""

from __future__ import annotations

import functools
import math
import re
import threading
from dataclasses import dataclass
from typing import Any

from sparring.config import Config, at_least, check
from sparring.envs.core import LanguageGame, Move, Outcome
from sparring.envs.router.data import QARow, load_qa
from sparring.envs.router.rewards import (
    CostWindow,
    exact_match,
    format_problems,
    normalize_answer,
    parse_search,
    router_reward,
)
from sparring.errors import ConfigError, ModelNotFoundError
from sparring.runs import resolve_model

EXPERT_PREFIX = "expert_"
QUESTION_MARKER = "Question:"
QUERY_MARKER = "Query:"
FINAL_TURN = "You may not ask experts any more: give your final answer now."
NONE_REPLY = "None"
"""The information an unknown expert or a failed call gives."""
EXPERT_REWARDS = ("router", "none")
_STOPS = ("</search>", "</answer>")
_ENDS = re.compile(r"</search>|</answer>")
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_TAGS = re.compile(r"</?(think|search|answer|information)>")


@dataclass(frozen=True)
class Expert:
    """An expert as the router sees it."""

    name: str
    description: str
    price: float
    """Dollars per 1M completion tokens."""
    latency: float = 0.0
    """Seconds per call."""
    tokenizer: str | None = None
    """The tokenizer that counts the expert's reply in completion tokens (the model that
    serves it: ``tiny``, a model directory, a checkpoint, a local hub id); None counts words."""

    def __post_init__(self) -> None:
        problems = [f"experts.{self.name}.{name}={value!r} must be a finite number >= 0"
                    for name in ("price", "latency") if not (math.isfinite(value := getattr(self, name)) and value >= 0)]
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            problems.append(f"expert name {self.name!r} must be letters, digits, '_', '.' or '-'")
        check(problems)

    def line(self) -> str:
        return f"- {self.name}: {self.description} (${self.price:g} per 1M tokens; {self.latency:g} s per call)"


#: The default pool: three scripted experts of rising skill and price (their skills:
#: ``sparring.agents.scripted.router.SKILLS``).
EXPERTS = (
    Expert("small", "a small fast model; good at arithmetic, unreliable on facts", 0.1, 0.2),
    Expert("medium", "a mid-sized model; good at arithmetic and world capitals", 0.8, 0.6),
    Expert("large", "a large model; strong on every kind of question", 6.0, 1.5),
)


@dataclass(frozen=True)
class RouterConfig(Config):
    """Arguments of ``sparring/router-v0`` (all picklable values)."""

    data: str = "train"
    """The questions: a shipped split (``train``, ``heldout``) or a FlashRAG-shaped JSONL
    file (``question``, ``golden_answers``; nq, triviaqa, popqa, hotpotqa, 2wiki, musique,
    bamboogle)."""
    experts: tuple[Expert, ...] = EXPERTS
    max_turns: int = 4
    """Routing rounds; then one final turn without routing."""
    cost_coef: float = 0.0
    """α: a correct answer earns (1 − α) + α·c_norm (the paper sweeps 0 … 0.9)."""
    cost_window: int = 1000
    """How many recent √cost values normalise a game's cost (p5/p95)."""
    cost_bounds: tuple[float, float] | None = None
    """``[low, high]``: fixed costs (dollars per question) whose square roots stand for p5 and
    p95, instead of the window's. A game's c_norm then depends on its own cost alone, so
    rewards of different runs, evaluations and duels compare exactly (the window's depend on
    what else the process played, and in what order games finished)."""
    expert_reward: str = "router"
    """``router``: each expert called in a game gets the router's reward (a cooperative game);
    ``none``: experts get 0."""
    max_output_chars: int = 4096

    def __post_init__(self) -> None:
        problems = at_least(self, 1, "max_turns", "cost_window", "max_output_chars")
        if not 0.0 <= self.cost_coef <= 1.0:
            problems.append(f"cost_coef={self.cost_coef} must lie in [0, 1]")
        if self.cost_bounds is not None and not _is_cost_range(self.cost_bounds):
            problems.append(f"cost_bounds={list(self.cost_bounds)} must be two finite costs 0 <= low < high")
        if self.expert_reward not in EXPERT_REWARDS:
            problems.append(f"expert_reward={self.expert_reward!r} is unknown; use one of {EXPERT_REWARDS}")
        names = [e.name for e in self.experts]
        if not names or len(set(names)) != len(names):
            problems.append(f"experts must be a non-empty list with distinct names, got {names}")
        check(problems)


def _is_cost_range(bounds: Any) -> bool:
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        return False
    return math.isfinite(high) and 0 <= low < high


@dataclass
class Call:
    """One routing round: what was asked of whom, and what came back."""

    expert: str
    query: str
    reply: str = NONE_REPLY
    tokens: int = 0
    cost: float = 0.0
    answered: bool = False
    """Whether the expert was asked (an unknown name or an empty query asks no one)."""


_WINDOWS: dict[int, CostWindow] = {}
_WINDOWS_LOCK = threading.Lock()


def shared_window(size: int) -> CostWindow:
    """The process's cost window of ``size`` values (games of one run share it)."""
    with _WINDOWS_LOCK:
        return _WINDOWS.setdefault(size, CostWindow(size))


@functools.lru_cache(maxsize=16)
def expert_tokenizer(model: str) -> Any:
    """The tokenizer of the model ``model`` that serves an expert (loaded once per process)."""
    from transformers import AutoTokenizer

    source = resolve_model(model)
    try:
        return source.load(AutoTokenizer)
    except (OSError, ValueError) as error:
        if not source.is_adapter:
            raise ModelNotFoundError(f"expert tokenizer {model!r}: {error}") from None
        return resolve_model(source.base).load(AutoTokenizer)  # an adapter saved without one


def count_tokens(model: str, text: str) -> int:
    """How many tokens ``model`` 's tokenizer makes of ``text`` (no special tokens added)."""
    return len(expert_tokenizer(model)(text, add_special_tokens=False)["input_ids"])


class RouterGame(LanguageGame):
    """One question per game (see :mod:`sparring.envs.router`)."""

    description = "Router-R1: a router answers questions by asking priced experts, rewarded on EM and cost."

    def __init__(self, config: RouterConfig | None = None, window: CostWindow | None = None):
        self.config = cfg = config or RouterConfig()
        self.experts = {e.name: e for e in cfg.experts}
        self.possible_agents = ("router", *(EXPERT_PREFIX + name for name in self.experts))
        self.max_turns = 2 * cfg.max_turns + 1
        self.max_output_chars = cfg.max_output_chars
        self.rows = load_qa(cfg.data)
        if window is None:
            window = CostWindow(bounds=cfg.cost_bounds) if cfg.cost_bounds else shared_window(cfg.cost_window)
        self.window = window
        self.tokenizers = {e.name: e.tokenizer for e in cfg.experts}
        """Expert → the model whose tokenizer counts its completion's tokens (None: the reply's words).
        Names, not tokenizers, so that the env pickles; each is loaded here, so a missing one is
        an error when the game is made."""
        for model in filter(None, self.tokenizers.values()):
            expert_tokenizer(model)

    # -- life cycle ------------------------------------------------------------------------
    def setup(self, options: dict[str, Any]) -> None:
        """``options`` may fix the ``question`` (and its ``golden_answers``)."""
        if "question" in options:
            golds = options.get("golden_answers")
            golds = [golds] if isinstance(golds, str) else golds
            if not isinstance(golds, (list, tuple)) or not golds or not all(normalize_answer(str(g)) for g in golds):
                raise ConfigError(f"options question=... needs golden_answers=[...] (non-empty answers), got {golds!r}")
            self.row = QARow(str(options["question"]), tuple(str(g) for g in golds))
        else:
            self.row = self.rows[int(self.rng.integers(len(self.rows)))]
        self.trajectory: list[str] = []
        """The router's moves (cut at their first closing tag) and the env's information."""
        self.calls: list[Call] = []
        self.pending: Call | None = None
        self.over = False

    @property
    def routing_open(self) -> bool:
        return len(self.calls) < self.config.max_turns

    def to_act(self) -> tuple[str, ...]:
        if self.over:
            return ()
        return (EXPERT_PREFIX + self.pending.expert,) if self.pending else ("router",)

    def observe(self, agent: str) -> str:
        if agent == "router":
            return self.router_observation()
        name = agent.removeprefix(EXPERT_PREFIX)
        if self.pending is not None and self.pending.expert == name:
            return (f"You are the expert {name}. Answer the query below in a few words.\n\n"
                    f"{QUERY_MARKER} {self.pending.query}")
        return f"You are the expert {name}. No query for you now."

    def router_observation(self) -> str:
        experts = "\n".join(e.line() for e in self.experts.values())
        parts = [
            "Answer the question. You may ask the experts below for help: write your reasoning in "
            "<think> ... </think>, then either <search> Expert: query </search> to ask one expert "
            "(its reply comes back in <information> ... </information>) or <answer> your answer "
            f"</answer> to finish. You may ask at most {self.config.max_turns} times; every expert "
            "charges for the tokens it writes.",
            f"Experts:\n{experts}",
            f"{QUESTION_MARKER} {self.row.question}",
        ]
        if self.trajectory:
            parts.append("".join(self.trajectory))
        if not self.routing_open and not self.over:
            parts.append(FINAL_TURN)
        return "\n\n".join(parts)

    def private_texts(self, agent: str) -> list[str]:
        return [m.reasoning for m in self.transcript if m.agent == agent and m.reasoning]

    # -- moves -----------------------------------------------------------------------------
    def read(self, agent: str, raw: Any) -> Move:
        """A router's output ends at its first closing ``</search>`` or ``</answer>``: what
        follows is dropped before the length limit applies."""
        if agent == "router" and isinstance(raw, str) and (end := _ENDS.search(raw)):
            raw = raw[:end.end()]
        return super().read(agent, raw)

    def interpret(self, move: Move) -> Move:
        if move.agent != "router" or move.raw is None:
            return move
        raw = move.raw[:self.max_output_chars]
        end = _ENDS.search(raw)
        cut = raw[:end.end()] if end else raw
        thoughts = _THINK.findall(cut)
        move.reasoning = "\n".join(t.strip() for t in thoughts) or None
        move.text = _THINK.sub("", cut).strip()
        move.value = cut.strip()
        if end is None:
            move.reject("the move ends with neither </search> nor </answer>")
        return move

    def resolve(self, moves: dict[str, Move]) -> Outcome:
        if "router" in moves:
            return self._route(moves["router"])
        return self._reply(next(iter(moves.values())))

    def _route(self, move: Move) -> Outcome:
        if move.error:
            if move.value:
                self.trajectory.append(move.value)
            return self._finish(answer=None, problems=[move.error])
        self.trajectory.append(move.value)
        if move.value.endswith("</answer>"):
            answer = move.value.rsplit("<answer>", 1)[-1].removesuffix("</answer>").strip()
            return self._finish(answer=answer)
        if not self.routing_open:
            return self._finish(answer=None, problems=["a search in the final turn, where routing is off"])
        body = move.value.rsplit("<search>", 1)[-1].removesuffix("</search>").strip()
        parsed = parse_search(body)
        call = Call(*parsed) if parsed else Call("", body)
        if parsed and parsed[0] in self.experts and parsed[1]:
            self.pending = call
        else:
            self._inform(call)
        return Outcome()

    def _reply(self, move: Move) -> Outcome:
        call, self.pending = self.pending, None
        text = _TAGS.sub(" ", move.text).strip()
        call.answered = True
        if not move.error and text:
            call.reply = " ".join(text.split())
            model = self.tokenizers[call.expert]
            call.tokens = count_tokens(model, move.text) if model else len(call.reply.split())  # what it generated
            call.cost = call.tokens * self.experts[call.expert].price / 1e6
        self._inform(call)
        return Outcome()

    def _inform(self, call: Call) -> None:
        self.calls.append(call)
        self.trajectory.append(f" <information> {call.reply} </information> ")

    def _finish(self, answer: str | None, problems: list[str] | None = None) -> Outcome:
        self.over = True
        cfg = self.config
        problems = problems if problems is not None else format_problems("".join(self.trajectory), self.experts)
        cost = sum(c.cost for c in self.calls)
        cost_norm = self.window.add(cost)
        em = exact_match(answer, self.row.golden_answers) if answer is not None else 0.0
        reward, terms = router_reward(not problems, em, cost_norm, cfg.cost_coef)
        called = {EXPERT_PREFIX + c.expert for c in self.calls if c.answered}
        rewards = {"router": reward}
        reward_terms: dict[str, dict[str, float]] = {"router": terms}
        for agent in self.possible_agents[1:]:
            share = reward if cfg.expert_reward == "router" and agent in called else 0.0
            rewards[agent] = share
            if share:
                reward_terms[agent] = {"router_outcome": share}
        shared = {"question": self.row.question, "golden_answers": list(self.row.golden_answers), "answer": answer,
                  "em": em, "cost": cost, "cost_norm": cost_norm, "format_problems": problems,
                  "calls": [vars(c).copy() for c in self.calls]}
        return Outcome(rewards=rewards, reward_terms=reward_terms, info={a: dict(shared) for a in self.possible_agents},
                       done=True)

    def header(self, viewer: str | None) -> str:
        return f"question: {self.row.question}"


STOP = _STOPS
"""Where a router's generation should stop (pass as ``SamplingParams(stop=STOP)``)."""
__all__ = ["EXPERTS", "STOP", "Call", "Expert", "RouterConfig", "RouterGame", "shared_window"]
