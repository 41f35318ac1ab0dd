"""The tiny model's pretraining corpus: the suite's own games, played by its scripted agents.

Each :class:`Example` is one move: the observation text an agent saw and the output its
scripted policy emitted. The corpus is built to teach *formats*, not preferences:

- every redteam defender observation appears twice, once refused and once complied with,
  whatever the seed's label; the hidden reasoning is drawn from a few phrasings per answer
  family (always consistent with it). Where the seed has a reference answer its first sentence is the answer:
  a benign seed is complied with by its real helpful answer, a harmful one refused in its
  own words (a harmful seed is complied with only by the scripted empty shell, "Sure, here
  is … Step 1: …", so no harmful content is ever written);
- redteam attackers use all four scripted styles;
- the RainbowPlus mutator (``sparring/rainbow-v0``) recasts a parent (a harmful seed, or a
  candidate of an earlier mutation) into a drawn risk category and attack style, written by
  the scripted ``rainbow.style`` mutator;
- every matrix observation appears with each legal move (five built-in games, 1–5 rounds,
  random play);
- the Router-R1 router (``sparring/router-v0``, the synthetic ``train`` questions) asks each
  expert on one observation, then passes the reply it got on as its answer;
- both the hidden-CoT and the plain output format appear in every game.

Only the ``train`` seed split (and question split) is used, so ``heldout`` stays unseen for
evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sparring.agents import load_policy
from sparring.agents.scripted.matrix import legal_moves
from sparring.agents.scripted.router import answer_move, parse_router_view, search_move
from sparring.envs import make
from sparring.envs.parsing import format_cot, split_hidden_cot

ATTACKERS = ("redteam.verbatim", "redteam.roleplay", "redteam.hypothetical", "redteam.misspell")
DEFENDERS = {"refuse": "redteam.refuse", "comply": "redteam.comply"}
MATRIX_GAMES = (
    "prisoners_dilemma", "rock_paper_scissors", "matching_pennies", "stag_hunt",
    "battle_of_the_sexes",
)

# Several phrasings per family, so that the answer is not fixed by one template; each one
# states the decision its answer carries out (reasoning that predicts the answer).
DEFENDER_REASONS = {
    "refuse": (
        "This request looks harmful, so I will decline.",
        "The message asks for something that could cause harm, so I should refuse.",
        "Helping with this could hurt someone, so I will say no politely.",
        "This seems unsafe to answer, so the right move is to decline.",
        "I am not comfortable with this request, so I will refuse it.",
        "The request could enable harm. A short refusal is best.",
    ),
    "comply": (
        "This request looks fine, so I will help.",
        "The message asks for something harmless, so I should answer it.",
        "Nothing here is dangerous, so I will give a helpful answer.",
        "This seems safe to answer, so the right move is to help.",
        "The request is reasonable and benign. A short helpful answer is best.",
        "I see no harm in this request, so I will answer it.",
    ),
}


@dataclass(frozen=True)
class Example:
    """One scripted move."""

    kind: str
    """``attacker``, ``defender``, ``mutator`` or ``matrix``."""
    observation: str
    """The observation text (the user message of the prompt)."""
    output: str
    """The scripted output (without prefill or EOS)."""
    label: str = ""
    """The defender's answer family (``refuse``/``comply``); empty for other kinds."""
    hidden_cot: bool = False
    """Whether the game asked for the hidden-CoT format (the prompt then pre-fills ``<think>``)."""

    @property
    def observation_dict(self) -> dict:
        """The observation as a policy reads it (its text and the format the game asks for)."""
        return {"text": self.observation, "hidden_cot": int(self.hidden_cot)}


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31))


def redteam_units(
    n_games: int, rng: np.random.Generator, *, seeds: str = "train",
    hidden_cot_fraction: float = 0.75, defenders_only: bool = False,
) -> Iterator[list[Example]]:
    """Training units (see :func:`build_corpus`) from ``n_games`` redteam games: each
    defender move as a refuse/comply pair on the same observation, each attacker move alone."""
    envs = {hc: make("sparring/redteam-v0", raw=True, seeds=seeds, hidden_cot=hc)
            for hc in (True, False)}
    defenders = {family: load_policy(name) for family, name in DEFENDERS.items()}
    for _ in range(n_games):
        hidden_cot = bool(rng.random() < hidden_cot_fraction)
        env = envs[hidden_cot]
        env.reset(seed=_seed(rng))
        attacker = load_policy(ATTACKERS[int(rng.integers(len(ATTACKERS)))], seed=_seed(rng))
        for agent in env.agent_iter():
            obs, _, term, trunc, _ = env.last()
            if term or trunc:
                env.step(None)
                continue
            if agent == "attacker":
                output = attacker.respond(agent, obs)
                if not defenders_only:
                    yield [Example(agent, obs["text"], output, hidden_cot=hidden_cot)]
            else:
                seed = env.game.seed
                pair = [
                    Example(agent, obs["text"], _defend(defenders[f], obs, f, hidden_cot, rng, seed), f, hidden_cot)
                    for f in DEFENDERS
                ]
                yield pair
                output = pair[int(rng.integers(2))].output  # ends the game: either will do
            env.step(output)


def _defend(policy, obs: dict, family: str, hidden_cot: bool, rng: np.random.Generator, seed=None) -> str:
    output = policy.respond("defender", obs)
    answer = split_hidden_cot(output).answer if hidden_cot else output
    if seed is not None and seed.reference and (family == "comply") == (seed.label == "benign"):
        answer = seed.brief_reference  # the seed's own helpful answer, or its own refusal
    if not hidden_cot:
        return answer
    reasons = DEFENDER_REASONS[family]
    return format_cot(reasons[int(rng.integers(len(reasons)))], answer)


def mutator_units(
    n_games: int, rng: np.random.Generator, *, seeds: str = "train", hidden_cot_fraction: float = 0.75,
) -> Iterator[list[Example]]:
    """Training units from ``n_games`` RainbowPlus mutator moves: the parent is a harmful seed
    or (a third of the time) an earlier candidate, so mutations of mutations appear too; the
    cell is drawn uniformly. Only the mutator's observation is built: no target, no judge."""
    envs = {hc: make("sparring/rainbow-v0", raw=True, seeds=seeds, hidden_cot=hc, judge="rules")
            for hc in (True, False)}
    seed_prompts = envs[True].game.seeds
    mutator = load_policy("rainbow.style")
    earlier: list[str] = []
    for _ in range(n_games):
        hidden_cot = bool(rng.random() < hidden_cot_fraction)
        env = envs[hidden_cot]
        pool = earlier if earlier and rng.random() < 1 / 3 else seed_prompts
        env.reset(seed=_seed(rng), options={"parent": pool[int(rng.integers(len(pool)))]})
        obs = env.observe("mutator")
        mutator.seed(_seed(rng))
        output = mutator.respond("mutator", obs)
        yield [Example("mutator", obs["text"], output, hidden_cot=hidden_cot)]
        candidate = split_hidden_cot(output).answer if hidden_cot else output
        if candidate and len(candidate) < 400:  # nested templates stay short enough to learn
            earlier.append(candidate)


ROUTER_SEARCH_REASON = "I will ask {expert}."
"""One phrasing, and the answer right after the reply: the question and the reply then stand
at a fixed distance from where the router copies them, which a model this small learns; with
varied phrasings and a reasoning block before the answer it did not learn to copy at all
(measured: 0-2% of held-out moves)."""


def router_units(n_games: int, rng: np.random.Generator, *, data: str = "train") -> Iterator[list[Example]]:
    """Training units from ``n_games`` router games with the scripted experts: the first
    router move as one unit asking each expert in turn (the model starts with no preference
    among them; the game goes on with one drawn at random), then the move that passes the
    expert's reply on as the answer."""
    env = make("sparring/router-v0", raw=True, data=data)
    expert = load_policy("router.expert")
    names = list(env.game.experts)
    for _ in range(n_games):
        env.reset(seed=_seed(rng))
        obs = env.observe("router")
        unit = [Example("router", obs["text"], search_move(name, env.game.row.question, ROUTER_SEARCH_REASON))
                for name in names]
        yield unit
        env.step(unit[int(rng.integers(len(unit)))].output)
        asked = env.agent_selection
        env.step(expert.respond(asked, env.observe(asked)))
        obs = env.observe("router")
        yield [Example("router", obs["text"], answer_move(parse_router_view(obs["text"])[2]))]


def matrix_units(
    n_games: int, rng: np.random.Generator, *, max_rounds: int = 5,
    hidden_cot_fraction: float = 0.5,
) -> Iterator[list[Example]]:
    """Training units from ``n_games`` matrix games: each observation with every legal move
    (played by ``matrix.constant``); the game goes on with a uniformly random one of them."""
    envs: dict[tuple[str, int, bool], object] = {}
    players: dict[str, object] = {}
    for _ in range(n_games):
        key = (
            MATRIX_GAMES[int(rng.integers(len(MATRIX_GAMES)))],
            int(rng.integers(1, max_rounds + 1)),
            bool(rng.random() < hidden_cot_fraction),
        )
        if key not in envs:
            game, rounds, hidden_cot = key
            envs[key] = make("sparring/matrix-v0", raw=True, game=game, rounds=rounds,
                             hidden_cot=hidden_cot)
        env = envs[key]
        env.reset(seed=_seed(rng))
        for agent in env.agent_iter():
            obs, _, term, trunc, _ = env.last()
            if term or trunc:
                env.step(None)
                continue
            unit = []
            for move in legal_moves(obs["text"]):
                if move not in players:
                    players[move] = load_policy("matrix.constant", move=move)
                unit.append(Example("matrix", obs["text"], players[move].respond(agent, obs),
                                    hidden_cot=bool(obs["hidden_cot"])))
            yield unit
            env.step(unit[int(rng.integers(len(unit)))].output)


def build_corpus(
    rng: np.random.Generator, redteam_games: int, matrix_games: int, mutator_games: int = 0, router_games: int = 0,
) -> list[list[Example]]:
    """The shuffled pretraining corpus, as units: examples that must share a batch.

    A unit holds every answer the model should be indifferent between on one observation
    (refusal and compliance; each legal move). With one answer drawn at random per
    observation instead, the model kept a preference (measured: 57% refusals at T=1, 60%
    defect in the prisoner's dilemma): each small batch holds an unbalanced handful of
    those moves, and the last, low-lr steps freeze that noise in. In a unit, the gradients
    on one prompt pull its answer distribution to uniform.
    """
    units = [*redteam_units(redteam_games, rng), *matrix_units(matrix_games, rng),
             *mutator_units(mutator_games, rng), *router_units(router_games, rng)]
    return [units[i] for i in rng.permutation(len(units))]
