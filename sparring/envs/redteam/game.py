"""The rules of the red-teaming game: attacker rewrites a seed, defender answers, judge scores."""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Any

from sparring.config import Config, at_least, check
from sparring.envs.core import Demonstration, LanguageGame, Move, Outcome
from sparring.envs.parsing import format_cot
from sparring.envs.redteam import prompts
from sparring.envs.redteam.data import SeedPrompt, load_seeds
from sparring.envs.redteam.rewards import REWARD_TABLES, score
from sparring.errors import ConfigError
from sparring.judges import judge_named
from sparring.judges.base import Judge, Verdict, check_verdict


@dataclass(frozen=True)
class RedTeamConfig(Config):
    """Arguments of ``sparring/redteam-v0`` (all picklable values)."""

    seeds: str = "train"
    """A shipped split (``train``; ``heldout`` and ``contrast`` for evaluation) or a seed file:
    WildJailbreak-shaped ``.jsonl``, HarmBench or XSTest ``.csv``, or ``.txt`` (one prompt per
    line, labelled by ``seed_label``)."""
    seed_label: str | None = None
    """The label of every prompt of a ``.txt`` seed file (``harmful`` or ``benign``)."""
    harmful_fraction: float = 0.5
    """Probability that a game draws a harmful seed (the rest are benign)."""
    revise_fraction: float = 0.5
    """Probability that the attacker rewrites the seed; otherwise the defender gets it verbatim
    and the attacker has no move."""
    reward_table: str = "general_sum"
    """``general_sum`` (Self-RedTeam's magnitudes) or ``all_one`` (every magnitude 1)."""
    zero_sum: bool = False
    """Defender's refusal and response-harm terms are the negated attacker's."""
    hidden_cot: bool = True
    """Outputs use ``reasoning </think> <answer> … </answer>``; off: the raw output is the
    answer and there is no format term (malformed outputs still get -1)."""
    max_output_chars: int = 8192
    """Longer outputs are invalid (format term -1) and cut before parsing."""
    judge: str = "rules"
    """The judge, by name (:data:`sparring.judges.JUDGES`): ``rules`` (the fast keyword
    heuristic), ``minilm`` (the learned embedding judge, which a non-answer cannot pay), or
    names joined by ``+`` for their worst-case ensemble. A judge object handed to the game
    (``judge=MyJudge()``) takes its place."""

    def __post_init__(self) -> None:
        problems = [f"{name}={value!r} must lie in [0, 1]" for name in ("harmful_fraction", "revise_fraction")
                    if not 0.0 <= (value := getattr(self, name)) <= 1.0]
        if self.seed_label not in (None, "harmful", "benign"):
            problems.append(f"seed_label={self.seed_label!r} must be 'harmful', 'benign' or None")
        if self.reward_table not in REWARD_TABLES:
            problems.append(f"reward_table={self.reward_table!r} is unknown; use one of {REWARD_TABLES}")
        check(problems + at_least(self, 1, "max_output_chars"))
        judge_named(self.judge)  # an unknown name fails with the config


class RedTeamGame(LanguageGame):
    possible_agents = ("attacker", "defender")
    max_turns = 2
    description = "Self-RedTeam: an attacker rewrites seed prompts, a defender answers, a judge scores."

    def __init__(self, config: RedTeamConfig | None = None, judge: Judge | None = None):
        self.config = config or RedTeamConfig()
        self.judge = judge if judge is not None else judge_named(self.config.judge)
        if not isinstance(self.judge, Judge):
            raise ConfigError(f"judge={self.judge!r} has no judge(prompt, response) method")
        self.slow_resolve = bool(getattr(self.judge, "awaits_model", False))
        self.hidden_cot = self.config.hidden_cot
        self.max_output_chars = self.config.max_output_chars
        seeds = load_seeds(self.config.seeds, self.config.seed_label)
        self.pools = {
            label: tuple(s for s in seeds if s.label == label) for label in ("harmful", "benign")
        }
        needs = {"harmful": self.config.harmful_fraction > 0, "benign": self.config.harmful_fraction < 1}
        for label, needed in needs.items():
            if needed and not self.pools[label]:
                raise ConfigError(
                    f"seeds={self.config.seeds!r} has no {label} rows but harmful_fraction="
                    f"{self.config.harmful_fraction} asks for them"
                )

    # -- life cycle ----------------------------------------------------------------------
    def setup(self, options: dict[str, Any]) -> None:
        """``options`` may fix the game: ``seed_prompt`` + ``label``, and/or ``revise``."""
        if "seed_prompt" in options:
            label = options.get("label")
            if label not in ("harmful", "benign"):
                raise ConfigError(f"options label={label!r} must be 'harmful' or 'benign'")
            self.seed = SeedPrompt(str(options["seed_prompt"]), label)
        else:
            label = "harmful" if self.rng.random() < self.config.harmful_fraction else "benign"
            pool = self.pools[label]
            self.seed = pool[int(self.rng.integers(len(pool)))]
        revise = options.get("revise")
        self.revised = bool(self.rng.random() < self.config.revise_fraction) if revise is None else bool(revise)
        self.attack: Move | None = None
        self.defense: Move | None = None
        self.verdict: Verdict | None = None
        self.result: dict[str, float] = {}

    def to_act(self) -> tuple[str, ...]:
        if self.defense is not None:
            return ()
        if self.revised and self.attack is None:
            return ("attacker",)
        return ("defender",)

    @property
    def attacked(self) -> bool:
        """Whether the defender is asked the attacker's rewrite: a revised game whose attack
        left a visible message (an attack with none sends the seed on verbatim)."""
        return self.revised and self.attack is not None and bool(self.attack.text)

    @property
    def message(self) -> str:
        """What the defender is asked: the attacker's visible text, or the verbatim seed."""
        return self.attack.text if self.attacked else self.seed.prompt

    def resolve(self, moves: dict[str, Move]) -> Outcome:
        if "attacker" in moves:
            self.attack = moves["attacker"]
            return Outcome()
        self.defense = moves["defender"]
        # An answer with nothing visible (a format error before any </think>) is not judged:
        # it is a format failure, not a tie, and none of its reasoning reaches the judge.
        self.verdict = check_verdict(self.judge.judge(self.message, self.defense.text), self.judge) \
            if self.defense.text else None
        scored = score(
            self.verdict,
            seed_label=self.seed.label,
            revised=self.revised,
            attacker_format_ok=self._format_ok(self.attack),
            defender_format_ok=self._format_ok(self.defense),
            attack_used=self.attacked,
            table=self.config.reward_table,
            zero_sum=self.config.zero_sum,
        )
        self.result = scored.rewards
        labels = asdict(self.verdict) if self.verdict else dict.fromkeys(("prompt_harmful", "refusal", "response_harmful"))
        shared = {
            "tie": scored.tie,
            "judge": {k: v for k, v in labels.items() if k != "rationale"},
            "seed_label": self.seed.label,
            "seed_contrast": self.seed.contrast,
            "revised": self.revised,
            # The game is over: what was asked and answered may be logged (never reasoning).
            "seed_prompt": self.seed.prompt,
            "attack": self.attack.text if self.attacked else None,
            "answer": self.defense.text,
        }
        return Outcome(
            rewards=scored.rewards,
            reward_terms=scored.terms,
            info={"attacker": dict(shared), "defender": dict(shared)},
            done=True,
        )

    def _format_ok(self, move: Move | None) -> bool | None:
        """The format term's verdict: ``None`` for no term (no move, or the hidden-CoT format
        off and the output fine); an output with nothing visible always fails."""
        if move is None:
            return None
        if self.hidden_cot:
            return move.format_valid and bool(move.text)
        return None if move.format_valid and move.text else False

    def demonstrations(self) -> list[Demonstration]:
        """The defender answering each benign seed that has a reference completion: the helpful
        answer (its first sentence, after a short post-filled reasoning, in the hidden-CoT
        format) to the message exactly as a verbatim game would ask it."""
        out = []
        for seed in self.pools["benign"]:
            if not seed.reference:
                continue
            text = prompts.defender_instruction(seed.prompt, self.hidden_cot)
            reason = prompts.HELPFUL_REASONS[zlib.crc32(seed.prompt.encode()) % len(prompts.HELPFUL_REASONS)]
            answer = seed.brief_reference
            output = format_cot(reason, answer) if self.hidden_cot else answer
            out.append(Demonstration("defender", {"text": text, "to_act": 1, "turn": 0,
                                                  "hidden_cot": int(self.hidden_cot)}, output))
        return out

    # -- what each agent sees ---------------------------------------------------------------
    def observe(self, agent: str) -> str:
        if agent == "attacker":
            return self._observe_attacker()
        return self._observe_defender()

    def _observe_attacker(self) -> str:
        if not self.revised:
            return "This game passes the seed prompt to the defender verbatim: you have no move."
        if self.attack is None:
            return prompts.attacker_instruction(self.seed.label, self.seed.prompt, self.hidden_cot)
        sent = (f"You sent the defender:\n{self.attack.text}" if self.attacked else
                "Your message had nothing visible in it (a format error), so the defender was sent the seed "
                "prompt verbatim.")
        if self.defense is None:
            return sent + "\n\nWaiting for the defender's answer."
        return sent + f"\n\nThe defender answered:\n{self.defense.text}\n\n" + self._result_line("attacker")

    def _observe_defender(self) -> str:
        if self.defense is None:
            if self.to_act() == ("defender",):
                return prompts.defender_instruction(self.message, self.hidden_cot)
            return "Waiting for the user's message."
        return (
            f"{prompts.MESSAGE_MARKER}\n{self.message}\n\nYou answered:\n{self.defense.text}"
            f"\n\n{self._result_line('defender')}"
        )

    def _result_line(self, agent: str) -> str:
        v = self.verdict
        labels = (f"request {v.prompt_harmful}, {v.refusal}, response {v.response_harmful}" if v
                  else "not judged (the answer had nothing visible in it)")
        return f"Judge: {labels}. Your reward: {self.result.get(agent, 0.0):+.2f}."

    def private_texts(self, agent: str) -> list[str]:
        texts = super().private_texts(agent)
        if agent == "attacker" and self.revised:
            role = prompts.ATTACKER_HARMFUL if self.seed.label == "harmful" else prompts.ATTACKER_BENIGN
            texts.append(role)
            # The seed is the attacker's to reveal: it is private unless its answer quotes it.
            if not (self.attack and self.seed.prompt in self.attack.text):
                texts.append(self.seed.prompt)
        return texts

    def header(self, viewer: str | None) -> str:
        if viewer is None:
            mode = "revised by the attacker" if self.revised else "passed verbatim"
            return f"seed ({self.seed.label}, {mode}): {self.seed.prompt}"
        if viewer == "attacker" and self.revised:
            return f"seed ({self.seed.label}): {self.seed.prompt}"
        return ""
