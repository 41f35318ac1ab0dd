"""The README as a user runs it: its Python snippets run as written, and each of its commands
composes to a valid config (quick); the slow test runs every command in order, with budgets
cut to one update so that it finishes."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SPARRING = os.path.join(os.path.dirname(sys.executable), "sparring")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def commands() -> list[list[str]]:
    """Every ``sparring ...`` line of the README's bash blocks, as argv (comments dropped)."""
    found = []
    for block in blocks("bash"):
        for line in block.splitlines():
            argv = shlex.split(line, comments=True)
            if argv and argv[0] == "sparring":
                found.append(argv[1:])
    return found


def test_the_readme_starts_with_the_two_commands():
    first = blocks("bash")[0].strip().splitlines()
    assert len(first) == 2
    assert first[0].startswith("python3 -m venv .venv && .venv/bin/pip install torch==2.13.0")
    assert first[0].endswith(".venv/bin/sparring arena run demo") and first[1] == ".venv/bin/python -m pytest"
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("exec .venv/bin/python -m pytest")


def test_the_python_snippets_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    snippets = blocks("python")
    assert len(snippets) >= 3
    for number, code in enumerate(snippets, 1):
        exec(compile(code, f"README.md python block {number}", "exec"), {"__name__": f"readme_{number}"})


def _split(args: list[str]) -> tuple[list[str], list[str]]:
    options = [a for a in args if a.startswith("--")]
    return [a for a in args if not a.startswith("--")], options


REFERENCE = re.compile(r"\bsparring(?:\.[a-z_][a-z0-9_]*)+(?:[.:][A-Za-z_][A-Za-z0-9_]*)?")


def _references() -> list[tuple[str, str]]:
    """Every dotted ``sparring.…`` name written in the README, the configs and the package."""
    files = [ROOT / "README.md", *sorted((ROOT / "configs").rglob("*.yaml")), *sorted((ROOT / "sparring").rglob("*.py"))]
    return sorted({(str(f.relative_to(ROOT)), m.group(0)) for f in files
                   for m in REFERENCE.finditer(f.read_text(encoding="utf-8"))})


def _resolves(reference: str) -> bool:
    import importlib

    module, _, name = reference.replace(":", ".").rpartition(".")
    try:
        importlib.import_module(reference.replace(":", "."))
        return True
    except ImportError:
        pass
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


def test_every_dotted_name_in_the_docs_and_configs_exists():
    """A class named in a config comment or a docstring moves: the name must move with it."""
    found = _references()
    assert len(found) > 20
    assert [f"{where}: {reference}" for where, reference in found if not _resolves(reference)] == []


def test_the_reference_check_sees_a_stale_name():
    assert not _resolves("sparring.agents.rllib.RLlibConfig") and _resolves("sparring.views.rllib.RLlibConfig")


@pytest.mark.parametrize("args", commands(), ids=lambda a: " ".join(a)[:60])
def test_every_command_composes_to_a_valid_config(args):
    from sparring import cli
    from sparring.agents.learners import config_for
    from sparring.arenas.tournament import TournamentConfig
    from sparring.views.rllib import RLlibConfig

    positional, _ = _split(args)
    if positional[0] == "train":
        overrides = positional[1:]
        if "engine=rllib" in overrides:
            RLlibConfig.from_dict(cli._compose("rllib", [o for o in overrides if o != "engine=rllib"]))
        else:
            config_for(cli._compose("train", overrides))
    elif positional[:2] == ["arena", "run"]:
        TournamentConfig.from_dict(cli._arena_config(positional[2], positional[3:]))
    else:
        assert positional[0] in ("arena", "eval", "play", "serve", "envs", "agents", "demo", "record"), args


SHORTEN = {"train": ["updates=1", "games_per_update=4", "group_size=2", "agent.max_new_tokens=16",
                     "tensorboard=false"],
           "rllib": ["iterations=1", "ppo.train_batch_size_per_learner=64", "ppo.minibatch_size=32",
                     "ppo.num_epochs=1", "progress=false"],
           "arena": ["games_per_pairing=1", "bootstrap=20"],
           "eval": ["--games", "2", "--eval-seeds", "0", "--no-embed"]}


def shortened(args: list[str]) -> list[str]:
    if args[0] == "train":
        if "--resume" in args:
            return args  # it continues a run of one update: its own budget is small
        extra = SHORTEN["rllib"] if "engine=rllib" in args else SHORTEN["train"]
        if "learner=grpo" not in args and "train=inpo" not in args:
            extra = [e for e in extra if not e.startswith("group_size")]
        if "train=inpo" in args:
            extra = [e for e in extra if not e.startswith("games_per_update")] + ["games_per_update=4"]
        if "train=rainbow" in args:  # candidates per update: a multiple of the mutations per iteration;
            # one short update must still archive something for the commands that read the archive
            extra = [e for e in extra if not e.startswith("agent.max_new_tokens")]  # the target's answers must end
            extra = [*extra, "num_mutations=2", "env.fitness_threshold=0.0"]
        if any(a.startswith("demonstrations=") for a in args):  # the model must be able to write whole moves
            extra = [e for e in extra if not e.startswith("agent.max_new_tokens")]
        if "train=sft" in args:  # a supervised update takes optimiser steps, not games
            extra = [e for e in extra if not e.startswith("games_per_update")] + ["learner.steps_per_update=2"]
        if any(a.startswith("train=mamql") for a in args):  # an inverse-RL run has no games to play per update
            extra = ["updates=2", "steps_per_update=20", "eval_every=1", "eval_games=2"]
        return [*args, *extra]
    if args[:2] == ["arena", "run"]:
        return [*args, *SHORTEN["arena"]]
    if args[0] == "eval":
        return [*args, *SHORTEN["eval"]]
    return args


@pytest.mark.slow
def test_every_command_runs_in_order_in_a_fresh_folder(tmp_path):
    (tmp_path / "my_agents.py").write_text(blocks("python")[-1])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for args in commands():
        if args[0] == "serve":
            continue  # a server runs until stopped: tests/test_cli.py starts and stops it
        result = subprocess.run([SPARRING, *shortened(args)], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, f"sparring {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
