"""The ``sparring`` command: games and agents, play, serve, train, evaluate, tournaments.

Bad input never ends in a traceback: every error sparring raises for it
(:mod:`sparring.errors`) is printed as one line and the command exits with status 2.
``SPARRING_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.text import Text

app = typer.Typer(
    help="sparring: language-model policies playing multi-agent games against each other.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

ENGINES = ("sparring", "rllib")
"""``sparring train engine=...``: the LLM trainers (``configs/train.yaml``) or RLlib PPO on a
discrete view (``configs/rllib.yaml``)."""


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Print sparring's errors (bad input, a failed run) as one line; exit with status 2."""
    from sparring.errors import SparringError

    try:
        yield
    except (SparringError, ImportError) as error:
        if os.environ.get("SPARRING_DEBUG"):
            raise
        raise _fail(str(error)) from None


def _fail(message: str) -> typer.Exit:
    """Print ``message`` as the command's one error line (as written: paths and values in it
    may hold brackets or colons, which must not be read as markup or emoji codes)."""
    console.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _parse_pairs(pairs: list[str], what: str) -> dict[str, Any]:
    """``KEY=VALUE`` options as a mapping. ``--set`` values are YAML (``rounds=5``,
    ``game=[rps]``); so are ``--seat`` values written as a mapping (``{policy: ..., k: v}``),
    other ``--seat`` values are policy specs as written."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _fail(f"{what} {pair!r} must look like KEY=VALUE")
        value = value.strip()
        if what == "--set" or value.startswith("{"):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError as error:
                mark = getattr(error, "problem_mark", None)
                where = f" (column {mark.column + 1})" if mark is not None else ""
                raise _fail(f"{what} {pair!r}: {value!r} is not a valid YAML value{where}: "
                            f"{getattr(error, 'problem', None) or error}") from None
        parsed[key.strip()] = value
    return parsed


def _seat_spec(spec: Any, model: str) -> Any:
    """A ``--seat`` policy as the resolver takes it: an ``llm`` seat without a model plays
    ``--model``."""
    if spec == "llm":
        return {"policy": "llm", "model": model}
    if isinstance(spec, dict) and spec.get("policy") == "llm" and "model" not in spec:
        return {**spec, "model": model}
    return spec


def _print_table(title: str, columns: tuple[str, str], rows) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@app.command()
def envs() -> None:
    """List the registered games and their single-agent Gymnasium views."""
    from sparring.envs import GAMES, VIEWS

    _print_table("games (pettingzoo.make('aec' | 'parallel', id) or sparring.make(id))",
                 ("id", "description"), ((s.id, s.description) for s in GAMES.values()))
    _print_table("single-agent views (gymnasium.make('sparring:' + id))",
                 ("id", "description"), ((s.id, s.description) for s in VIEWS.values()))


@app.command()
def agents() -> None:
    """List the registered policies (any 'module:Class' path, model or run works too)."""
    from sparring.agents import POLICIES

    _print_table("policies", ("name", "what it does"),
                 ((name, description) for name, (_, description) in POLICIES.items()))


@app.command()
def play(
    game: Annotated[str, typer.Argument(help="a game id, e.g. sparring/redteam-v0 or redteam-v0")],
    seat: Annotated[list[str], typer.Option(help="AGENT=POLICY, e.g. defender=human (repeatable)")] = [],
    set_: Annotated[list[str], typer.Option("--set", help="game argument KEY=VALUE, e.g. rounds=5")] = [],
    seed: Annotated[int | None, typer.Option(help="seed of the game")] = None,
    human: Annotated[bool, typer.Option(help="give the first open seat to you")] = True,
    reveal: Annotated[bool, typer.Option(help="show every agent's hidden reasoning at the end")] = False,
    model: Annotated[str, typer.Option(help="model of the 'llm' seats: tiny, a model directory, a run or a hub id")] = "tiny",
) -> None:
    """Play one game in the terminal: you against scripted agents, or scripted agents only.

    Hidden reasoning is shown only to its owner: you see your own, never your opponent's
    (pass --reveal to see everything at the end).
    """
    from sparring.agents import PolicyResolver
    from sparring.agents.base import Reported
    from sparring.agents.rollout import play as play_game
    from sparring.envs import make, spec
    from sparring.errors import ConfigError

    _quiet_transformers()
    with _errors():
        registered = spec(game)
        env = make(registered.id, **_parse_pairs(set_, "--set"))
        chosen = {agent: spec["policy"] if isinstance(spec, dict) and set(spec) == {"policy"} else spec
                  for agent, spec in _parse_pairs(seat, "--seat").items()}  # {policy: human} is human
        unknown = set(chosen) - set(env.possible_agents)
        if unknown:
            raise ConfigError(f"{registered.id} has no seat(s) {sorted(unknown)}; its seats: {env.possible_agents}")
        open_seats = [a for a in env.possible_agents if a not in chosen]
        if human and open_seats and "human" not in chosen.values():
            if registered.numeric:  # its seats read vectors
                console.print(f"{registered.id} is played on numbers, not text: no seat for you, scripted agents play")
            else:
                chosen[open_seats[0]] = "human"
        for agent in env.possible_agents:
            chosen.setdefault(agent, registered.seat_default(agent))
        resolver = PolicyResolver()
        seats = {agent: Reported(resolver.resolve(_seat_spec(name, model)), agent, name) for agent, name in chosen.items()}
        console.print(Text.assemble((registered.id, "bold"), ": ", ", ".join(f"{a} = {n}" for a, n in chosen.items())))
        episode = asyncio.run(play_game(env, seats, seed=seed))
    viewers = [a for a, n in chosen.items() if n == "human"]
    viewer = viewers[0] if viewers else None
    console.rule("game record")
    console.print(env.unwrapped.game.render_transcript(viewer=viewer, reveal=reveal), markup=False)
    console.rule("result")
    for agent in env.possible_agents:
        terms = ", ".join(f"{k} {v:+g}" for k, v in episode.reward_terms[agent].items()) or "no terms"
        console.print(f"{agent} ({chosen[agent]}): reward {episode.rewards[agent]:+g}  [{terms}]", markup=False)


@app.command()
def record(
    game: Annotated[str, typer.Argument(help="a game id, e.g. sparring/gems-v0 or gems-v0")],
    out: Annotated[str, typer.Option(help="the file to write: .jsonl or .parquet")],
    seat: Annotated[list[str], typer.Option(help="AGENT=POLICY, e.g. blue=gems.expert (repeatable)")] = [],
    set_: Annotated[list[str], typer.Option("--set", help="game argument KEY=VALUE, e.g. size=5")] = [],
    episodes: Annotated[int, typer.Option(help="games to record")] = 10,
    seed: Annotated[int, typer.Option(help="seed of the first game (the others follow)")] = 0,
    force: Annotated[bool, typer.Option(help="replace --out if it exists")] = False,
) -> None:
    """Record demonstrations: play games between policies and write every agent's steps
    (obs, action, reward, next obs, done) as JSONL or Parquet, for inverse RL (MAMQL)."""
    from sparring.agents import PolicyResolver
    from sparring.agents.base import Reported
    from sparring.agents.trajectories import record_transitions, write_transitions
    from sparring.envs import make, spec
    from sparring.errors import ConfigError

    with _errors():
        if episodes < 1:
            raise ConfigError(f"--episodes={episodes} must be >= 1")
        if not out.endswith((".jsonl", ".parquet")):
            raise ConfigError(f"--out={out}: trajectory files end in .jsonl or .parquet")
        if os.path.exists(out) and not force:
            raise ConfigError(f"--out={out} exists already; pass --force to replace it, or name another file")
        registered = spec(game)
        kwargs = _parse_pairs(set_, "--set")
        probe = make(registered.id, parallel=True, **kwargs)
        chosen = _parse_pairs(seat, "--seat")
        unknown = set(chosen) - set(probe.possible_agents)
        if unknown:
            raise ConfigError(f"{registered.id} has no seat(s) {sorted(unknown)}; its seats: {probe.possible_agents}")
        resolver = PolicyResolver()
        specs = {a: chosen.get(a, registered.seat_default(a)) for a in probe.possible_agents}
        seats = {a: Reported(resolver.resolve(name), a, name) for a, name in specs.items()}
        rows = record_transitions(lambda: make(registered.id, parallel=True, **kwargs), seats,
                                  range(seed, seed + episodes), prefix=registered.id.split("/")[-1])
        path = write_transitions(out, rows)
    console.print(f"{len(rows)} steps of {episodes} games of {registered.id} written to {path}", markup=False)


@app.command()
def serve(
    model: Annotated[list[str], typer.Option(help="NAME=MODEL to serve (MODEL: tiny, a model directory, a run or a hub id); repeatable")] = ["tiny=tiny"],
    host: Annotated[str, typer.Option(help="address to bind (loopback unless you mean otherwise)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0: a free one)")] = 8000,
    api_key: Annotated[str | None, typer.Option(envvar="SPARRING_API_KEY", help="require 'Authorization: Bearer KEY' on /v1")] = None,
    backend: Annotated[str, typer.Option(help="the pool behind the server: transformers, ray or vllm")] = "transformers",
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    max_batch_size: Annotated[int, typer.Option(help="most requests batched together")] = 64,
) -> None:
    """Serve models over an OpenAI-compatible HTTP API backed by one batching pool.

    Routes: /v1/completions, /v1/chat/completions, /v1/models, /v1/weights, /health. Stops on
    Ctrl-C (SIGINT) or SIGTERM."""
    from sparring.errors import ConfigError
    from sparring.pool import PoolConfig, build_pool
    from sparring.pool.server import run_server

    _quiet_transformers()
    with _errors():
        models = {}
        for pair in model:
            name, sep, source = pair.partition("=")
            if not sep or not name or not source:
                raise ConfigError(f"--model {pair!r} must look like NAME=MODEL, e.g. tiny=tiny")
            models[name] = source
        if backend == "remote":
            raise ConfigError("--backend remote would serve another server's pool; point clients at that server")
        if not 0 <= port <= 65535:
            raise ConfigError(f"--port={port} must lie in 0..65535 (0: a free one)")
        pool = build_pool(PoolConfig(backend=backend, device=device, max_batch_size=max_batch_size), models)

        def ready(url: str) -> None:
            console.print(f"serving {pool.policies} on {url}/v1 (Ctrl-C stops)", highlight=False)

        run_server(pool, host, port, api_key, on_ready=ready)


def _quiet_transformers() -> None:
    """No per-file "Loading weights" bars in the middle of our own progress display."""
    from transformers.utils import logging

    logging.disable_progress_bar()


# -- Hydra ---------------------------------------------------------------------------------------
def _compose(config_name: str, overrides: list[str] | None) -> dict[str, Any]:
    """Compose ``configs/<config_name>.yaml`` with Hydra overrides into a plain dict; an
    override Hydra cannot apply is reported in one line, with the closest valid key."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from sparring.paths import config_dir

    with _errors():
        try:
            with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
                cfg = compose(config_name=config_name, overrides=list(overrides or []))
            return OmegaConf.to_container(cfg, resolve=True)
        except (HydraException, OmegaConfBaseException) as error:
            raise _override_error(config_name, str(error)) from None


def _override_error(config_name: str, message: str) -> Exception:
    """Hydra's message about a bad override, as one line that names the fix."""
    import re

    from sparring.errors import ConfigError, did_you_mean
    from sparring.paths import config_dir

    missing = re.search(r"Could not override '([^']+)'", message) or re.search(r"Key '([^']+)' is not in struct", message)
    if missing:
        key = missing.group(1)
        known = _known_keys(config_name)
        if key in known:  # a setting of the default recipe, not of the one chosen
            return ConfigError(f"{key}: the chosen recipe has no such setting (it is one of another recipe in "
                               f"configs/{config_name}.yaml; a key that is really new takes a '+': +KEY=VALUE)")
        return ConfigError(f"{key}: no such setting in configs/{config_name}.yaml.{did_you_mean(key, known)} "
                           "(a key that is really new takes a '+': +KEY=VALUE)")
    group = re.search(r"Could not find '([^'/]+)/([^']+)'", message)
    if group:
        options = sorted(p.stem for p in (config_dir() / group.group(1)).glob("*.yaml"))
        return ConfigError(f"{group.group(1)}={group.group(2)}: no such config.{did_you_mean(group.group(2), options)} "
                           f"Available: {', '.join(options)}")
    return ConfigError(" ".join(message.split()))


def _known_keys(config_name: str) -> list[str]:
    """Every dotted key of a composed config (for suggestions)."""
    values = _compose(config_name, [])

    def walk(prefix: str, value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for k, v in value.items():
                yield from walk(f"{prefix}.{k}" if prefix else str(k), v)
        if prefix:
            yield prefix

    return list(walk("", values))


def _recipe(config_name: str, overrides: list[str], resume: bool) -> dict[str, Any]:
    """The composed recipe; with ``resume``, the run's saved recipe with only the settings
    given on the command line changed (so a resume needs none of the original overrides)."""
    values = _compose(config_name, overrides)
    if not resume:
        return values
    from sparring.errors import RunError
    from sparring.runs import RECIPE_KEYS, describe_run, recipe_matches, saved_config

    with _errors():
        saved = saved_config(values.get("run_dir", ""))
        named = [o for o in overrides if o.split("=", 1)[0] in RECIPE_KEYS]
        if named and not recipe_matches(saved, values):  # the run's own recipe may be repeated
            raise RunError(f"{values.get('run_dir')} holds {describe_run(saved)}; a run resumes with its own recipe: "
                           f"leave out {named[0]}, or start that recipe in another run_dir=")
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if not key or "=" not in override:
            continue
        path = key.split("@", 1)[0].split(".")
        source, target = values, saved
        for part in path[:-1]:
            source, target = source.get(part, {}), target.setdefault(part, {})
        if path[-1] in source:
            target[path[-1]] = source[path[-1]]
    return saved


# -- training ------------------------------------------------------------------------------------
@app.command(context_settings={"allow_extra_args": True})
def demo(
    overrides: Annotated[list[str] | None, typer.Argument(help="Hydra overrides, e.g. games=4")] = None,
) -> None:
    """Scripted agents and the tiny model play short batches of every game, as tables."""
    from sparring.arenas.demo import DemoConfig, run_demo, tables

    values = _compose("demo", overrides)
    with _errors():
        demo_cfg = DemoConfig.from_dict(values)
        results = run_demo(demo_cfg)
    for table in tables(results, demo_cfg):
        console.print(table)


@app.command(context_settings={"allow_extra_args": True})
def train(
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Hydra overrides of configs/train.yaml, e.g. updates=20 learner=grpo group_size=4")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in run_dir from its last checkpoint "
                                                         "(the saved recipe; overrides change only what they name)")] = False,
) -> None:
    """Train policies: self-play (REINFORCE++, GRPO), INPO/DPO, or RLlib PPO (engine=rllib).

    Checkpoints, metrics.jsonl, TensorBoard events and a learning curve go to run_dir.
    Recipes: configs/train/ (train=selfplay | inpo | rainbow | router | mamql); with engine=rllib, configs/rllib/
    (e.g. engine=rllib rllib=redteam)."""
    from sparring.errors import ConfigError, did_you_mean

    overrides = list(overrides or [])
    engines = [o.split("=", 1)[1] for o in overrides if o.startswith("engine=")]
    overrides = [o for o in overrides if not o.startswith("engine=")]
    engine = engines[-1] if engines else "sparring"
    if engine not in ENGINES:
        with _errors():
            raise ConfigError(f"engine={engine!r} is unknown; use one of {', '.join(ENGINES)}.{did_you_mean(engine, ENGINES)}")
    if engine == "rllib":
        _train_rllib(overrides, resume)
        return
    from sparring.agents.learners import trainer_for

    _quiet_transformers()
    values = _recipe("train", overrides, resume)
    with _errors():
        trainer = trainer_for(values, resume=resume)
    try:
        with _errors(), _progress("update", trainer.cfg.updates, trainer.update,
                                  trainer.cfg.progress_every_s) as show:
            trainer.on_update = lambda row: show(row["update"], _training_summary(row))
            metrics = trainer.run()
    finally:
        trainer.close()
    last = metrics[-1]["update"] if metrics else 0
    console.print(f"trained {last} updates; {trainer.run_dir.outputs()} in {trainer.run_dir.dir}", highlight=False)
    archive = getattr(trainer, "archive", None)
    if archive is not None:  # a search: its archive's pictures go with the run
        from sparring.arenas.archive_report import write_archive_report

        paths = write_archive_report(archive, trainer.run_dir.dir)
        console.print(f"the archive: {len(archive)} prompts, coverage {archive.coverage():.0%}, QD-score "
                      f"{archive.qd_score():.2f}; {paths['heatmap'].name} and {paths['html'].name} there too",
                      highlight=False)


def _train_rllib(overrides: list[str], resume: bool) -> None:
    from sparring.views.rllib import RLlibConfig, RLlibTrainer

    values = _recipe("rllib", overrides, resume)
    with _errors():
        cfg = RLlibConfig.from_dict(values)
        trainer = RLlibTrainer(cfg, resume=resume)
        with _progress("iteration", cfg.iterations, trainer.iteration, cfg.progress_every_s, cfg.progress) as show:
            trainer.on_update = lambda row: show(row["update"], _returns_summary(row))
            metrics = trainer.run()
    last = metrics[-1]["update"] if metrics else 0
    console.print(f"trained {last} iterations; {trainer.run_dir.outputs()} in {trainer.run_dir.dir}", highlight=False)


def _returns_summary(row: dict[str, Any]) -> str:
    shown = "  ".join(f"{k.removeprefix('return/')} {v:+.2f}" for k, v in row.items() if k.startswith("return/"))
    return f"return: {shown or 'no episode yet'}"


def _training_summary(row: dict[str, Any]) -> str:
    shown = [f"{k.split('/', 1)[1]} {v:+.2f}" for k, v in row.items() if k.startswith(("reward/", "return/"))]
    if "kl_per_sequence" in row:
        shown.append(f"kl {row['kl_per_sequence']:.3f}")
    shown += [f"{k.replace('/', ' ')} {row[k]:.3f}" for k in ("nll/train", "nll/heldout") if k in row]
    shown += [f"{k} {row[k]:.2f}" for k in ("pairs", "champion_p", "valid_format", "coverage", "qd_score", "asr") if k in row]
    shown += [f"{k.replace('_', ' ')} {row[k]}" for k in ("archive_size",) if k in row]
    return "  ".join(shown)


@contextlib.contextmanager
def _progress(unit: str, total: int, done: int, every_s: float, shown: bool = True):
    """``show(n, text)``: a live progress bar in a terminal; elsewhere (output to a file) a
    plain line at most every ``every_s`` seconds, and at the end; nothing unless ``shown``."""
    if not shown:
        yield lambda n, text: None
        return
    if console.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = (TextColumn(f"[bold]{unit}"), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn(),
                   TextColumn("{task.description}"))
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("", total=total, completed=done)
            yield lambda n, text: bar.update(task, completed=n, description=text)
        return
    started, last = time.monotonic(), [float("-inf")]
    print(f"{unit} {done}/{total}: starting", flush=True)

    def show(n: int, text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or n >= total:
            last[0] = now
            print(f"{unit} {n}/{total} ({now - started:.0f} s): {text}", flush=True)

    yield show


@app.command("eval")
def eval_(
    model: Annotated[str, typer.Argument(help="tiny, a model directory, a checkpoint or a run directory")] = "tiny",
    games: Annotated[int, typer.Option(help="games per opponent and evaluation seed")] = 64,
    eval_seeds: Annotated[str, typer.Option("--eval-seeds", help="comma-separated evaluation seeds")] = "0,1,2",
    seeds: Annotated[str, typer.Option(help="seed split (heldout | contrast | train) or a file: WildJailbreak-shaped "
                                            ".jsonl, HarmBench or XSTest .csv, .txt (one prompt per line)")] = "heldout",
    label: Annotated[str | None, typer.Option(help="harmful or benign: the label of a .txt seed file's prompts")] = None,
    judge: Annotated[str, typer.Option(help="refusal and harm judge: minilm | rules | minilm+rules")] = "minilm",
    embed: Annotated[bool, typer.Option(help="embedding diversity with all-MiniLM-L6-v2")] = True,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Evaluate a red-teaming model against the scripted agents on held-out seeds.

    Reports defender safety and compliance, attacker success and attack diversity, as mean ±
    std over evaluation seeds."""
    import json

    from rich.table import Table

    from sparring.arenas.evaluate import EvalConfig, evaluate
    from sparring.errors import ConfigError

    _quiet_transformers()
    with _errors():
        try:
            parsed_seeds = tuple(int(s) for s in eval_seeds.split(",") if s.strip())
        except ValueError:
            raise ConfigError(f"--eval-seeds {eval_seeds!r} must be integers separated by commas, e.g. 0,1,2") from None
        from sparring.pool import PoolConfig

        cfg = EvalConfig(model=model, games=games, eval_seeds=parsed_seeds, seeds=seeds, label=label, judge=judge,
                         embedder="minilm" if embed else None, pool=PoolConfig(device=device))
        report = evaluate(cfg)
    if as_json:
        print(json.dumps(report.to_dict()))
        return
    table = Table(title=f"{report.model}: {games} games per opponent x {len(parsed_seeds)} seeds ({seeds} seeds)")
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    for name, (mean, std) in report.summary().items():
        table.add_row(name, f"{mean:+.3f} ± {std:.3f}")
    console.print(table)


# -- tournaments ---------------------------------------------------------------------------------
arena_app = typer.Typer(help="Tournaments: schedules, ratings, meta-game analysis and reports.",
                        no_args_is_help=True)
app.add_typer(arena_app, name="arena")
_OUT_DIR = typer.Option("--out-dir", help="where tournaments live")


def _arena_config(config: str, overrides: list[str] | None) -> dict[str, Any]:
    """A tournament config: a name in configs/arena/ or a YAML file, plus Hydra overrides."""
    from sparring.errors import NotFoundError, did_you_mean
    from sparring.paths import config_dir

    with _errors():
        if config.endswith((".yaml", ".yml")):
            return _arena_file(config, list(overrides or []))
        known = sorted(p.stem for p in (config_dir() / "arena").glob("*.yaml"))
        if config not in known:
            raise NotFoundError(f"no tournament config {config!r}.{did_you_mean(config, known)} The shipped ones: "
                                f"{', '.join(known)} (or give a .yaml path)")
    return _compose("arena", [f"arena={config}", *(overrides or [])])


_ARENA_FILE = "sparring_arena_file"
"""The name a tournament file with Hydra ``defaults:`` is composed under (Hydra's config store)."""


def _arena_file(config: str, overrides: list[str]) -> dict[str, Any]:
    """A tournament config file plus overrides. A file with a ``defaults:`` list (a copy of a
    shipped config, the natural template) is composed by Hydra exactly as the shipped one is,
    its defaults found in configs/ (``/env@game: matrix`` fills in the game's fields), and the
    overrides follow Hydra's rules; a plain file is read as it is, the overrides merged in."""
    from pathlib import Path

    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from sparring.errors import ConfigError, NotFoundError
    from sparring.paths import text_file

    path = Path(config)
    if not path.is_file():
        raise NotFoundError(f"no tournament config at {path}")
    try:
        with text_file(path) as f:
            loaded = OmegaConf.load(f)
    except yaml.YAMLError as error:
        raise ConfigError(_yaml_error(path, error)) from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path}: a tournament config is a mapping of settings (name:, game:, roster:, ...), "
                          f"not a {type(OmegaConf.to_object(loaded)).__name__}")
    if "defaults" in loaded:
        return _compose_arena_file(path, OmegaConf.to_container(loaded), overrides)
    try:
        merged = OmegaConf.merge(loaded, OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
        return OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"{path}: {' '.join(str(error).split())}") from None


def _yaml_error(path, error: yaml.YAMLError) -> str:
    """A YAML syntax error as one line that points at the file, line and column to fix."""
    mark = getattr(error, "problem_mark", None)
    if mark is None:
        return f"{path}: not valid YAML: {' '.join(str(error).split())}"
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {error.problem}"
    context, start = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and start is not None:
        where += f", {context} that starts at line {start.line + 1}, column {start.column + 1}"
    return where


def _compose_arena_file(path, values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Compose a tournament file's ``defaults:`` with Hydra against the shipped configs;
    Hydra's complaints come back as one line that names the file."""
    import re

    from hydra import compose, initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from sparring.errors import ConfigError, did_you_mean
    from sparring.paths import config_dir

    def composed(given: list[str]) -> dict[str, Any]:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return OmegaConf.to_container(compose(config_name=_ARENA_FILE, overrides=given), resolve=True)

    ConfigStore.instance().store(name=_ARENA_FILE, node=values)
    try:
        return composed(overrides)
    except (HydraException, OmegaConfBaseException, ValueError) as error:  # ValueError: a malformed defaults list
        message = str(error).split("Config search path:")[0].replace(f"In '{_ARENA_FILE}': ", "")
        message = " ".join(message.replace(f"'{_ARENA_FILE}'", "this file").split())
        unknown = re.search(r"Could not override '([^']+)'", message)
        if unknown:
            key, hint = unknown.group(1), ""
            with contextlib.suppress(HydraException, OmegaConfBaseException):
                hint = did_you_mean(key, _dotted_keys(composed([])))
            message = f"{key}: no such setting in this file.{hint} (a key that is really new takes a '+': +KEY=VALUE)"
        raise ConfigError(f"{path}: {message}") from None


def _dotted_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key of a nested mapping (``game.rounds``), for suggestions."""
    keys = []
    for key, value in values.items():
        keys.append(f"{prefix}{key}")
        if isinstance(value, dict):
            keys += _dotted_keys(value, f"{prefix}{key}.")
    return keys


def _finish(tournament) -> None:
    from sparring.arenas.report import analyse, rating_rows, terminal_table, write_reports

    analysis = analyse(tournament.cfg, tournament.store.matches())
    tournament.store.save_ratings(rating_rows(analysis))
    paths = write_reports(analysis, tournament.store.path.parent)
    console.print(terminal_table(analysis))
    console.print(f"report: {paths['html']}  (also report.json, leaderboard.csv, matches.csv)", highlight=False,
                  soft_wrap=True)


def _play(tournament, use_ray: bool) -> None:
    from sparring.arenas.ratings import games_from_matches

    stored = tournament.store.matches()
    points = {a: 0.0 for a in tournament.cfg.roster}

    def tally(records) -> None:
        for g in games_from_matches(records):
            points[g.a] += g.score
            points[g.b] += 1 - g.score

    tally(stored)
    played = [len(stored)]
    with _progress("matches", tournament.total_matches, len(stored), every_s=30.0) as show:
        def on_match(record) -> None:
            tally([record])
            played[0] += 1
            leader = max(points, key=points.get)
            show(played[0], f"leader: {leader} ({points[leader]:g} pts)")

        with _errors():
            tournament.run(on_match=on_match, use_ray=use_ray)


@arena_app.command("run", context_settings={"allow_extra_args": True})
def arena_run(
    config: Annotated[str, typer.Argument(help="a config in configs/arena/ (demo, rps, ...) or a .yaml file")],
    overrides: Annotated[list[str] | None, typer.Argument(help="overrides, e.g. games_per_pairing=16")] = None,
    use_ray: Annotated[bool, typer.Option("--ray", help="play matches as Ray tasks")] = False,
) -> None:
    """Start a tournament; results go to OUT_DIR/NAME/ (SQLite store, report.html, exports)."""
    from sparring.arenas.runner import Tournament
    from sparring.arenas.tournament import TournamentConfig

    _quiet_transformers()
    values = _arena_config(config, overrides)
    with _errors():
        tournament = Tournament.create(TournamentConfig.from_dict(values))
    _play(tournament, use_ray)
    _finish(tournament)


def _open(name: str, out_dir: str):
    from sparring.arenas.runner import Tournament

    with _errors():
        return Tournament.open(name, out_dir)


@arena_app.command("resume")
def arena_resume(
    name: Annotated[str, typer.Argument(help="the tournament's name")],
    out_dir: Annotated[str, _OUT_DIR] = "runs/arena",
    use_ray: Annotated[bool, typer.Option("--ray", help="play matches as Ray tasks")] = False,
) -> None:
    """Finish a stopped or killed tournament: plays exactly the matches not yet stored."""
    _quiet_transformers()
    tournament = _open(name, out_dir)
    _play(tournament, use_ray)
    _finish(tournament)


@arena_app.command("report")
def arena_report(
    name: Annotated[str, typer.Argument(help="the tournament's name")],
    out_dir: Annotated[str, _OUT_DIR] = "runs/arena",
    as_json: Annotated[bool, typer.Option("--json", help="print the analysis as JSON")] = False,
) -> None:
    """Leaderboard, meta-game analysis and reports of the matches played so far."""
    import json

    from sparring.arenas.report import analyse, to_json

    tournament = _open(name, out_dir)
    if as_json:
        print(json.dumps(to_json(analyse(tournament.cfg, tournament.store.matches()))))
        return
    _finish(tournament)


@arena_app.command("ls")
def arena_ls(out_dir: Annotated[str, _OUT_DIR] = "runs/arena") -> None:
    """The tournaments under OUT_DIR and how far each got."""
    from rich.table import Table

    from sparring.arenas.runner import list_tournaments

    table = Table(title=f"tournaments in {out_dir}")
    for column in ("name", "matches", "status"):
        table.add_column(column)
    for name, done, total in list_tournaments(out_dir):
        status = "unreadable" if done < 0 else "finished" if done == total else "stopped (resume it)"
        table.add_row(name, "-" if done < 0 else f"{done}/{total}", status)
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
