"""The ``sparring`` command: games and agents, play, serve, train, evaluate, tournaments."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

app = typer.Typer(
    help="sparring: language-model policies playing multi-agent games against each other.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

#: Seats a game gets when ``--seat`` leaves them open: the first open seat is the human's.
DEFAULT_SEATS = {
    "sparring/redteam-v0": {"attacker": "redteam.roleplay", "defender": "redteam.keyword"},
    "sparring/matrix-v0": {"player_0": "matrix.tit_for_tat", "player_1": "matrix.tit_for_tat"},
}


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=2)


def _parse_pairs(pairs: list[str], what: str) -> dict[str, Any]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _fail(f"{what} {pair!r} must look like KEY=VALUE")
        parsed[key.strip()] = yaml.safe_load(value) if what == "--set" else value.strip()
    return parsed


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
    """List the registered policies (any 'module:Class' path works too)."""
    from sparring.agents import POLICIES

    _print_table("policies", ("name", "what it does"),
                 ((name, description) for name, (_, description) in POLICIES.items()))


@app.command()
def play(
    game: Annotated[str, typer.Argument(help="a game id, e.g. sparring/redteam-v0 or redteam-v0")],
    seat: Annotated[list[str], typer.Option(help="AGENT=POLICY, e.g. defender=human (repeatable)")] = [],  # noqa: B006
    set_: Annotated[list[str], typer.Option("--set", help="game argument KEY=VALUE, e.g. rounds=5")] = [],  # noqa: B006
    seed: Annotated[int | None, typer.Option(help="seed of the game")] = None,
    human: Annotated[bool, typer.Option(help="give the first open seat to you")] = True,
    reveal: Annotated[bool, typer.Option(help="show every agent's hidden reasoning at the end")] = False,
    model: Annotated[str, typer.Option(help="model of the 'llm' seats: tiny, a local path or a hub id")] = "tiny",
) -> None:
    """Play one game in the terminal: you against scripted agents, or scripted agents only.

    Hidden reasoning is shown only to its owner: you see your own, never your opponent's
    (pass --reveal to see everything at the end).
    """
    from sparring.agents import load_policy
    from sparring.agents.rollout import play as play_game
    from sparring.envs import UnknownGameError, make, spec

    try:
        game_id = spec(game).id
        env = make(game_id, **_parse_pairs(set_, "--set"))
    except (UnknownGameError, ValueError, TypeError, FileNotFoundError) as e:
        raise _fail(str(e)) from e
    chosen = _parse_pairs(seat, "--seat")
    unknown = set(chosen) - set(env.possible_agents)
    if unknown:
        raise _fail(f"{game_id} has no seat(s) {sorted(unknown)}; its seats: {env.possible_agents}")
    defaults = DEFAULT_SEATS.get(game_id, {})
    open_seats = [a for a in env.possible_agents if a not in chosen]
    if human and open_seats and "human" not in chosen.values():
        chosen[open_seats[0]] = "human"
    for agent in env.possible_agents:
        chosen.setdefault(agent, defaults.get(agent, "random"))
    try:
        seats = {agent: load_policy(name, **({"model": model} if name == "llm" else {}))
                 for agent, name in chosen.items()}
    except (ValueError, TypeError, OSError) as e:
        raise _fail(str(e)) from e
    console.print(f"[bold]{game_id}[/bold]: " + ", ".join(f"{a} = {n}" for a, n in chosen.items()))
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
def serve(
    model: Annotated[list[str], typer.Option(help="NAME=MODEL to serve (MODEL: tiny, a local path or a hub id); repeatable")] = ["tiny=tiny"],  # noqa: B006
    host: Annotated[str, typer.Option(help="address to bind (loopback unless you mean otherwise)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0: a free one)")] = 8000,
    api_key: Annotated[str | None, typer.Option(envvar="SPARRING_API_KEY", help="require 'Authorization: Bearer KEY' on /v1")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    max_batch_size: Annotated[int, typer.Option(help="most requests batched together")] = 64,
) -> None:
    """Serve models over an OpenAI-compatible HTTP API backed by one batching pool.

    Routes: /v1/completions, /v1/chat/completions, /v1/models, /v1/weights, /health."""
    from sparring.pool import InferencePool, PoolConfig
    from sparring.pool.server import run_server

    pool = InferencePool(PoolConfig(max_batch_size=max_batch_size))
    try:
        for pair in model:
            name, sep, source = pair.partition("=")
            if not sep or not name or not source:
                raise ValueError(f"--model {pair!r} must look like NAME=MODEL, e.g. tiny=tiny")
            if source == "tiny":
                from sparring.models import TINY_MODEL

                source = str(TINY_MODEL)
            pool.add_policy(name, source, device=device)
    except (ValueError, OSError) as e:
        raise _fail(str(e)) from e
    console.print(f"serving {pool.policies} on http://{host}:{port}/v1 (Ctrl-C stops)")
    run_server(pool, host, port, api_key)


def _quiet_transformers() -> None:
    """No per-file "Loading weights" bars in the middle of our own progress display."""
    from transformers.utils import logging

    logging.disable_progress_bar()


# KeyError: an unknown game id (UnknownGameError) or policy name reached through a config.
_CONFIG_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, KeyError, FileNotFoundError, FileExistsError)


def _compose(config_name: str, overrides: list[str] | None) -> dict[str, Any]:
    """Compose ``configs/<config_name>.yaml`` with Hydra overrides into a plain dict."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from sparring.paths import config_dir

    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides or []))
        return OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise _fail(str(e)) from e


@app.command(context_settings={"allow_extra_args": True})
def demo(
    overrides: Annotated[list[str] | None, typer.Argument(help="Hydra overrides, e.g. games=4")] = None,
) -> None:
    """Scripted agents and the tiny model play short batches of every game, as tables."""
    from sparring.arenas.demo import DemoConfig, run_demo, tables

    values = _compose("demo", overrides)
    try:
        demo_cfg = DemoConfig(**values)
        results = run_demo(demo_cfg)
    except _CONFIG_ERRORS as e:
        raise _fail(str(e)) from e
    for table in tables(results, demo_cfg):
        console.print(table)


@app.command(context_settings={"allow_extra_args": True})
def train(
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Hydra overrides of configs/train.yaml, e.g. updates=20 learner=grpo group_size=4")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in run_dir from its last checkpoint")] = False,
) -> None:
    """Train policies: self-play (REINFORCE++, GRPO), INPO/DPO, or RLlib PPO (engine=rllib).

    Checkpoints, metrics.jsonl, TensorBoard events and a learning curve go to run_dir.
    Recipes: configs/train/ (train=selfplay | inpo); with engine=rllib, configs/rllib/
    (e.g. engine=rllib rllib=redteam)."""
    if "engine=rllib" in (overrides or []):
        from sparring.agents.rllib import train_rllib

        values = _compose("rllib", [o for o in overrides if o != "engine=rllib"])
        try:
            metrics = train_rllib(values, resume=resume)
        except _CONFIG_ERRORS as e:
            raise _fail(str(e)) from e
        last = metrics[-1]["update"] if metrics else 0
        console.print(f"trained {last} iterations; checkpoints, metrics.jsonl and learning_curve.png in "
                      f"{values['run_dir']}")
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sparring.agents.learners import SelfPlayTrainer, TrainConfig

    _quiet_transformers()
    values = _compose("train", overrides)
    try:
        trainer = SelfPlayTrainer(TrainConfig.from_dict(values), resume=resume)
    except _CONFIG_ERRORS as e:
        raise _fail(str(e)) from e
    cfg = trainer.cfg
    columns = (TextColumn("[bold]update"), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("", total=cfg.updates, completed=trainer.update)

            def show(row: dict) -> None:
                shown = [f"{k.removeprefix('reward/')} {v:+.2f}" for k, v in row.items() if k.startswith("reward/")]
                if "kl_per_sequence" in row:
                    shown.append(f"kl {row['kl_per_sequence']:.3f}")
                shown += [f"{k} {row[k]:.2f}" for k in ("pairs", "champion_p", "valid_format") if k in row]
                progress.update(task, completed=row["update"], description="  ".join(shown))

            trainer.on_update = show
            metrics = trainer.run()
    finally:
        trainer.close()
    last = metrics[-1]["update"] if metrics else 0
    console.print(f"trained {last} updates; checkpoints, metrics.jsonl and learning_curve.png in {cfg.run_dir}")


@app.command("eval")
def eval_(
    model: Annotated[str, typer.Argument(help="tiny, a model directory, a checkpoint or a run directory")] = "tiny",
    games: Annotated[int, typer.Option(help="games per opponent and evaluation seed")] = 64,
    eval_seeds: Annotated[str, typer.Option("--eval-seeds", help="comma-separated evaluation seeds")] = "0,1,2",
    seeds: Annotated[str, typer.Option(help="seed split (heldout | train) or a JSONL path")] = "heldout",
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

    _quiet_transformers()
    try:
        parsed_seeds = tuple(int(s) for s in eval_seeds.split(",") if s.strip())
        cfg = EvalConfig(model=model, games=games, eval_seeds=parsed_seeds, seeds=seeds,
                         embedder="minilm" if embed else None, device=device)
        report = evaluate(cfg)
    except _CONFIG_ERRORS + (ImportError,) as e:
        raise _fail(str(e)) from e
    if as_json:
        print(json.dumps(report.to_dict()))
        return
    table = Table(title=f"{report.model}: {games} games per opponent x {len(parsed_seeds)} seeds ({seeds} seeds)")
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    for name, (mean, std) in report.summary().items():
        table.add_row(name, f"{mean:+.3f} ± {std:.3f}")
    console.print(table)


arena_app = typer.Typer(help="Tournaments: schedules, ratings, meta-game analysis and reports.",
                        no_args_is_help=True)
app.add_typer(arena_app, name="arena")
_OUT_DIR = typer.Option("--out-dir", help="where tournaments live")


def _arena_config(config: str, overrides: list[str] | None) -> dict[str, Any]:
    """A tournament config: a name in configs/arena/ or a YAML file, plus Hydra overrides."""
    from pathlib import Path

    if config.endswith((".yaml", ".yml")):
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        path = Path(config)
        if not path.is_file():
            raise _fail(f"no tournament config at {path}")
        try:
            merged = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides or [])))
            return OmegaConf.to_container(merged, resolve=True)
        except OmegaConfBaseException as e:
            raise _fail(str(e)) from e
    from sparring.paths import config_dir

    known = sorted(p.stem for p in (config_dir() / "arena").glob("*.yaml"))
    if config not in known:
        raise _fail(f"no tournament config {config!r}; the shipped ones: {known} (or give a .yaml path)")
    return _compose("arena", [f"arena={config}", *(overrides or [])])


def _finish(tournament, progress_done: int = 0) -> None:
    from sparring.arenas.report import analyse, rating_rows, terminal_table, write_reports
    from sparring.arenas.runner import directory

    analysis = analyse(tournament.cfg, tournament.store.matches())
    tournament.store.save_ratings(rating_rows(analysis))
    paths = write_reports(analysis, directory(tournament.cfg.out_dir, tournament.cfg.name))
    console.print(terminal_table(analysis))
    console.print(f"report: {paths['html']}  (also report.json, leaderboard.csv, matches.csv)")


def _play(tournament, use_ray: bool) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from sparring.arenas.ratings import games_from_matches

    stored = tournament.store.matches()
    points = {a: 0.0 for a in tournament.cfg.roster}

    def tally(records) -> None:
        for g in games_from_matches(records):
            points[g.a] += g.score
            points[g.b] += 1 - g.score

    tally(stored)
    columns = (TextColumn("[bold]matches"), MofNCompleteColumn(), BarColumn(), TimeRemainingColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("", total=tournament.total_matches, completed=len(stored))

        def on_match(record) -> None:
            tally([record])
            leader = max(points, key=points.get)
            progress.update(task, advance=1, description=f"leader: {leader} ({points[leader]:g} pts)")

        tournament.run(on_match=on_match, use_ray=use_ray)


@arena_app.command("run", context_settings={"allow_extra_args": True})
def arena_run(
    config: Annotated[str, typer.Argument(help="a config in configs/arena/ (demo, rps, ...) or a .yaml file")],
    overrides: Annotated[list[str] | None, typer.Argument(help="overrides, e.g. games_per_pairing=16")] = None,
    use_ray: Annotated[bool, typer.Option("--ray", help="play matches as Ray tasks")] = False,
) -> None:
    """Start a tournament; results go to OUT_DIR/NAME/ (SQLite store, report.html, exports)."""
    from sparring.arenas.runner import Tournament
    from sparring.arenas.store import StoreError
    from sparring.arenas.tournament import TournamentConfig

    _quiet_transformers()
    values = _arena_config(config, overrides)
    try:
        tournament = Tournament.create(TournamentConfig(**values))
    except _CONFIG_ERRORS + (StoreError,) as e:
        raise _fail(str(e)) from e
    _play(tournament, use_ray)
    _finish(tournament)


def _open(name: str, out_dir: str):
    from sparring.arenas.runner import Tournament
    from sparring.arenas.store import StoreError

    try:
        return Tournament.open(name, out_dir)
    except (StoreError, ValueError, TypeError) as e:
        raise _fail(str(e)) from e


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
    main()
