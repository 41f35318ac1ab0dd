"""``sparring/router-v0``: Router-R1's router-as-agent, with the experts as agents too.

A game is one question. The **router** reasons in ``<think> … </think>`` and either asks an
expert, ``<search> Expert: query </search>``, or ends with ``<answer> … </answer>``; a move
ends at the first ``</search>`` or ``</answer>`` (anything after it is dropped: give the
pool ``SamplingParams(stop=STOP)``). The asked expert (agent ``expert_<name>``) sees only the
query and replies; the env hands the reply back as ``<information> … </information>``
(``None`` for an unknown expert, an empty query or a failed call). After ``max_turns``
routing rounds the router has one final turn without routing.

==================  =============================================================
Agents              ``router``, ``expert_<name>`` per expert of ``experts``
Turns               sequential: router, [expert, router]*, at most ``2·max_turns + 1``
Actions             text (``Utterance``): the router's grammar above; experts: free text
Observations        ``Dict(text, to_act, turn, hidden_cot)``; the router's shows every
                    expert's name, description, price per 1M tokens and latency
Rewards             terminal; router in [−1, 1]; experts: the router's (``expert_reward``)
Arguments           see :class:`RouterConfig`, plus ``render_mode``
==================  =============================================================

The router's reward (:mod:`sparring.envs.router.rewards`), over its whole trajectory:

- −1 when any format rule fails: tags balanced and not nested; every ``<think>`` non-empty
  and not ``...``; exactly one ``<answer>`` and at least one ``<think>``; as many searches as
  information replies; it starts with ``<think>`` and ends with ``</answer>``; every search
  has exactly one ``:``, a non-empty query and an expert of the pool;
- else, on an exact match (lower case, no punctuation, no articles, whitespace collapsed)
  with any gold answer: (1 − α) + α·c_norm, α = ``cost_coef``; else 0.

Cost: c = Σ over calls of reply tokens × price / 1e6 (tokens counted by the expert's
``tokenizer``, the model that serves it, or as whitespace-separated words of the reply when it
names none); c_norm = 1 − clip((√c − p5)/(p95 − p5), 0, 1) over a sliding window of the
last ``cost_window`` values of √c that the games of a process share (0.5 while p95 = p5), or,
with ``cost_bounds=[low, high]``, p5 = √low and p95 = √high fixed, so that a game's score
depends on its own cost alone (rewards of different runs and duels then compare exactly).
``infos[agent]`` carries ``reward_terms`` (``format``, or ``outcome`` and ``cost``), ``em``,
``cost``, ``cost_norm``, ``format_problems``, ``calls`` and the question and gold answers.
The router's reasoning (its ``<think>`` blocks) never reaches an expert. Each router move is
one trajectory sample: the information replies are in its observation, never in what it is
trained on.

``reset(options=...)`` may fix ``question`` + ``golden_answers``.

Version history: v0 — initial release.
"""

from __future__ import annotations

from sparring.envs.core import language_envs
from sparring.envs.router.data import QARow, load_qa
from sparring.envs.router.game import EXPERTS, STOP, Expert, RouterConfig, RouterGame


def _game(**kwargs) -> RouterGame:
    return RouterGame(RouterConfig.from_dict(kwargs))


raw_env, parallel_raw_env, env, parallel_env = language_envs(__name__, "router_v0", _game)

__all__ = ["EXPERTS", "STOP", "Expert", "QARow", "RouterConfig", "RouterGame", "env", "load_qa", "parallel_env",
           "parallel_raw_env", "raw_env"]
