"""Tournaments: known meta-game answers, resumption after a kill, forfeits, bad input, reports."""

import asyncio
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from sparring import cli
from sparring.arenas import metagame
from sparring.arenas.report import analyse, write_reports
from sparring.arenas.runner import Tournament, play_match
from sparring.arenas.store import DB_NAME
from sparring.arenas.tournament import TournamentConfig, swiss_pairs
from sparring.cli import app
from sparring.errors import ConfigError

TESTS = Path(__file__).resolve().parent
SPARRING = os.path.join(os.path.dirname(sys.executable), "sparring")
RPS = {"id": "sparring/matrix-v0", "game": "rock_paper_scissors", "rounds": 1}
PURE = {m: {"policy": "matrix.constant", "move": m} for m in ("rock", "paper", "scissors")}


def flat(text: str) -> str:
    return " ".join(text.split())


def run_tournament(tmp_path, **overrides):
    values = {"name": "t", "game": RPS, "roster": PURE, "games_per_pairing": 3, "out_dir": str(tmp_path),
              "bootstrap": 100} | overrides
    tournament = Tournament.create(TournamentConfig(**values))
    analysis = analyse(tournament.cfg, tournament.run())
    write_reports(analysis, tmp_path / values["name"])
    return tournament, analysis


def test_pure_rock_paper_scissors_has_the_uniform_nash_and_equal_ratings(tmp_path):
    tournament, analysis = run_tournament(tmp_path)
    assert len(analysis.matches) == 3 * 3 * 2  # pairs x seeds x seat orders
    for mass in (analysis.nash, analysis.nash_average, analysis.alpharank):
        assert mass == pytest.approx([1 / 3] * 3, abs=1e-4)
    for system in (analysis.bradley_terry, analysis.elo):
        for a in analysis.agents:
            for b in analysis.agents:
                assert system[b].lo <= system[a].value <= system[b].hi  # equal within the intervals
    assert [r.value for r in analysis.bradley_terry.values()] == pytest.approx([1000.0] * 3)
    assert all(analysis.record[a] == {"wins": 6, "draws": 0, "losses": 6, "forfeits": 0} for a in analysis.agents)


def test_a_dominance_chain_gives_a_pure_nash_and_the_right_order(tmp_path):
    beats = [[0, 1, 1], [-1, 0, 1], [-1, -1, 0]]  # a beats b and c, b beats c
    game = {"id": "sparring/matrix-v0", "game": "chain", "action_names": [["a", "b", "c"]] * 2,
            "payoffs": [[[beats[i][j], -beats[i][j]] for j in range(3)] for i in range(3)]}
    roster = {name: {"policy": "matrix.constant", "move": name} for name in ("c", "a", "b")}
    _, analysis = run_tournament(tmp_path, game=game, roster=roster)
    assert [row["agent"] for row in analysis.leaderboard()] == ["a", "b", "c"]
    order = analysis.agents  # roster order: c, a, b
    assert analysis.nash[order.index("a")] == pytest.approx(1.0, abs=1e-6)
    assert analysis.alpharank[order.index("a")] == pytest.approx(1.0, abs=1e-3)
    elo = analysis.elo
    assert elo["a"].value > elo["b"].value > elo["c"].value


def test_alpharank_matches_the_fixation_probabilities_worked_by_hand():
    # Two agents; A out-scores B by 1 when they meet. With the local selection model a
    # mutant r fixes in a population of s with rho = (1 - e^-u) / (1 - e^-mu), u = alpha *
    # (payoff(r, s) - payoff(s, r)); the two-state chain's stationary odds are rho(B->A)/rho(A->B).
    alpha, m = 0.3, 5
    payoffs = np.array([[0.0, 0.5], [-0.5, 0.0]])

    def rho(u):
        return (1 - math.exp(-u)) / (1 - math.exp(-m * u))

    a_invades, b_invades = rho(alpha * 1.0), rho(alpha * -1.0)
    expected_a = a_invades / (a_invades + b_invades)
    assert metagame.alpharank(payoffs, alpha=alpha, population=m) == pytest.approx([expected_a, 1 - expected_a])


def test_a_swiss_schedule_pairs_each_agent_once_per_round_and_never_repeats(tmp_path):
    roster = {f"p{i}": {"policy": "matrix.random"} for i in range(6)}
    tournament, analysis = run_tournament(tmp_path, roster=roster, schedule="swiss", swiss_rounds=3,
                                          games_per_pairing=2)
    assert len(analysis.matches) == tournament.total_matches == 3 * 3 * 2 * 2
    pairs_by_round: dict[int, set] = {}
    for m in analysis.matches:
        pairs_by_round.setdefault(m.round, set()).add(frozenset(m.seats.values()))
    seen = set()
    for pairs in pairs_by_round.values():
        assert len(pairs) == 3 and len(set().union(*pairs)) == 6  # everyone plays once per round
        assert not pairs & seen
        seen |= pairs


def test_swiss_pairs_avoid_a_repeat_a_greedy_pairing_would_make():
    """Taking the nearest unplayed partner in rank order leaves p1 and p4, who have met; a
    pairing without any repeat exists, so that is the one chosen."""
    cfg = TournamentConfig(name="s", game=RPS, roster={f"p{i}": {"policy": "matrix.random"} for i in range(6)},
                           schedule="swiss")
    played = {frozenset(p) for p in (("p0", "p2"), ("p0", "p5"), ("p1", "p4"), ("p1", "p5"), ("p2", "p3"),
                                     ("p3", "p4"))}
    points = {"p0": 1.5, "p5": 1.5, "p2": 1.0, "p3": 1.0, "p1": 0.5, "p4": 0.5}
    pairs = swiss_pairs(cfg, 2, points, played)
    assert pairs == [("p0", "p3"), ("p5", "p4"), ("p2", "p1")]
    everyone = {frozenset((a, b)) for i, a in enumerate(cfg.roster) for b in list(cfg.roster)[i + 1:]}
    again = swiss_pairs(cfg, 5, points, everyone)  # all have met: neighbours in rank play again
    assert again == [("p0", "p5"), ("p2", "p3"), ("p1", "p4")]
    odd = TournamentConfig(name="s", game=RPS, roster={f"p{i}": {"policy": "matrix.random"} for i in range(5)},
                           schedule="swiss")
    points = {"p0": 0.0, "p1": 2.0, "p2": 1.0, "p3": 3.0, "p4": 1.5}
    assert swiss_pairs(odd, 1, points, {frozenset(("p3", "p1"))}) == [("p3", "p4"), ("p1", "p2")]  # p0 sits out


def write_config(path: Path, **values) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def slow_config(tmp_path: Path, out: Path, name: str = "killme") -> Path:
    roster = {m: {"policy": "arena_agents:SlowConstant", "move": m, "delay_s": 0.03} for m in ("rock", "paper", "scissors")}
    roster["random"] = {"policy": "matrix.random"}
    return write_config(tmp_path / f"{name}.yaml", name=name, game=RPS, roster=roster, games_per_pairing=6,
                        concurrency=2, out_dir=str(out), bootstrap=50)


def cli_env():
    return {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def stored(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM matches").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_killed_tournament_resumes_with_every_match_once_and_the_same_table(tmp_path):
    """A user's own agents (by import path) through the CLI; SIGKILL mid-run; resume."""
    killed_out, clean_out = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen([SPARRING, "arena", "run", str(slow_config(tmp_path, killed_out))], env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    db = killed_out / "killme" / DB_NAME
    try:
        deadline = time.monotonic() + 120
        while stored(db) < 20:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    total = 6 * 6 * 2
    assert 20 <= stored(db) < total

    resumed = subprocess.run([SPARRING, "arena", "resume", "killme", "--out-dir", str(killed_out)], env=cli_env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with sqlite3.connect(db) as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM matches")]
    assert len(keys) == len(set(keys)) == total

    clean = subprocess.run([SPARRING, "arena", "run", str(slow_config(tmp_path, clean_out))], env=cli_env(),
                           capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    after_kill = json.loads((killed_out / "killme" / "report.json").read_text())
    uninterrupted = json.loads((clean_out / "killme" / "report.json").read_text())
    assert after_kill["leaderboard"] == uninterrupted["leaderboard"]
    assert after_kill["payoffs"] == uninterrupted["payoffs"]
    assert "leaderboard" not in resumed.stderr and "report:" in flat(resumed.stdout)


def test_agents_that_raise_or_stall_in_a_match_forfeit_it_and_the_tournament_goes_on(tmp_path):
    """The crasher passes its probe game (its bug shows only against paper); the sleeper's probe
    move only runs out of time. Both are let in and forfeit the matches they fail in."""
    roster = {"rock": PURE["rock"], "paper": PURE["paper"], "crasher": {"policy": "arena_agents:CrashesOnPaper"},
              "sleeper": {"policy": "arena_agents:Sleeper"}}
    sys.path.insert(0, str(TESTS))
    try:
        _, analysis = run_tournament(tmp_path, game=RPS | {"rounds": 2}, roster=roster, games_per_pairing=1,
                                     move_timeout_s=0.2)
    finally:
        sys.path.remove(str(TESTS))
    assert len(analysis.matches) == 6 * 2
    forfeits = [m for m in analysis.matches if m.status == "forfeit"]
    assert {m.forfeit_by for m in forfeits} == {"crasher", "sleeper"}
    reasons = {m.forfeit_by: m.reason for m in forfeits}
    assert "RuntimeError: this agent has a bug" in reasons["crasher"]
    assert "no move within 0.2 s" in reasons["sleeper"]
    crashed = {frozenset(m.seats.values()) for m in forfeits if m.forfeit_by == "crasher"}
    assert crashed == {frozenset({"crasher", "paper"})}
    done = [m for m in analysis.matches if m.status == "done"]
    assert {frozenset(m.seats.values()) for m in done} == {frozenset({"rock", "paper"}), frozenset({"rock", "crasher"})}
    assert analysis.record["crasher"]["forfeits"] == 2 and analysis.record["rock"]["forfeits"] == 0
    from sparring.arenas.report import rating_rows

    games = {agent: n for _, agent, *_, n in rating_rows(analysis)}
    assert games["crasher"] == 2 * 3  # each of its 6 matches once: a forfeit is one lost game, not two


def test_a_pool_failure_stops_the_tournament_without_a_forfeit_and_a_resume_replays_it(tmp_path):
    from sparring.errors import BackendError

    roster = {"rock": PURE["rock"], "paper": PURE["paper"], "flaky": {"policy": "arena_agents:PoolDiesOnPaper"}}
    sys.path.insert(0, str(TESTS))
    try:
        with pytest.raises(BackendError, match="out of memory.*no agent forfeits it.*sparring arena resume t"):
            run_tournament(tmp_path, game=RPS | {"rounds": 2}, roster=roster, games_per_pairing=1, concurrency=1)
        tournament = Tournament.open("t", str(tmp_path))
        stored = tournament.store.matches()
        assert all(m.status == "done" for m in stored)  # nothing counted against anyone
        assert not any({"flaky", "paper"} == set(m.seats.values()) for m in stored)
        tournament.store.close()
    finally:
        sys.path.remove(str(TESTS))


def test_an_entry_whose_policy_raises_in_its_probe_game_stops_the_tournament_before_any_match(tmp_path):
    roster = {"rock": PURE["rock"], "paper": PURE["paper"], "crasher": {"policy": "arena_agents:Crasher"}}
    sys.path.insert(0, str(TESTS))
    try:
        with pytest.raises(ConfigError) as raised:
            run_tournament(tmp_path, roster=roster)
    finally:
        sys.path.remove(str(TESTS))
    message = str(raised.value)
    assert message.startswith("roster.crasher: its policy raised RuntimeError: this agent has a bug in seat player_0 "
                              "of its probe game")
    assert "\n" not in message and "take it out of the roster" in message
    assert not (tmp_path / "t").exists()  # nothing was played, nothing written


def test_the_move_timeout_holds_for_a_blocking_synchronous_policy_and_the_others_play_on(tmp_path):
    """A scripted policy whose respond blocks (never awaits): each of its moves times out in
    its own thread, so it forfeits every match, and its matches run concurrently."""
    roster = {"rock": PURE["rock"], "paper": PURE["paper"],
              "blocker": {"policy": "arena_agents:Blocker", "delay_s": 2.0}}
    timeout = 0.3
    sys.path.insert(0, str(TESTS))
    try:
        started = time.perf_counter()
        _, analysis = run_tournament(tmp_path, roster=roster, games_per_pairing=2, move_timeout_s=timeout)
        elapsed = time.perf_counter() - started
    finally:
        sys.path.remove(str(TESTS))
    forfeits = [m for m in analysis.matches if m.status == "forfeit"]
    assert len(forfeits) == 2 * 2 * 2 and {m.forfeit_by for m in forfeits} == {"blocker"}
    assert all(m.reason == f"no move within {timeout:g} s" for m in forfeits)
    assert analysis.record["rock"]["forfeits"] == analysis.record["paper"]["forfeits"] == 0
    assert elapsed < len(forfeits) * timeout, f"{elapsed:.2f} s: the blocked matches ran one at a time"


@pytest.mark.parametrize(
    ("args", "message"),
    [(["arena", "run", "nosuch"], "no tournament config 'nosuch'"),
     (["arena", "run", "rps", "+roster.bad={policy: matrix.nobody}"], "unknown policy"),
     (["arena", "run", "rps", "game.id=sparring/rps-v0"], "Did you mean"),
     (["arena", "run", "rps", "games_per_pairing=0"], "games_per_pairing=0"),
     (["arena", "resume", "nothing"], "no tournament at")],
)
def test_bad_tournament_input_gets_a_clear_error(args, message, tmp_path):
    extra = [] if args[1] == "resume" else [f"out_dir={tmp_path}"]
    result = CliRunner().invoke(app, [*args, *extra] + (["--out-dir", str(tmp_path)] if args[1] == "resume" else []))
    assert result.exit_code == 2, result.output
    assert message in flat(result.output)


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, "foreign"])
def test_corrupt_or_foreign_files_are_refused_and_left_untouched(tmp_path, content):
    home = tmp_path / "t"
    home.mkdir()
    db = home / DB_NAME
    if content == "foreign":
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
            conn.execute("INSERT INTO meta VALUES ('format', 'someone-else')")
    else:
        db.write_bytes(content)
    before = db.read_bytes()
    runner = CliRunner()
    for args in (["arena", "resume", "t", "--out-dir", str(tmp_path)], ["arena", "report", "t", "--out-dir", str(tmp_path)],
                 ["arena", "run", "rps", "name=t", f"out_dir={tmp_path}"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "untouched" in flat(result.output) or "already exists" in flat(result.output)
    assert db.read_bytes() == before


def test_a_report_before_the_first_match_says_so_and_how_to_resume(tmp_path):
    cfg = TournamentConfig(name="early", game=RPS, roster=PURE, games_per_pairing=1, out_dir=str(tmp_path),
                           bootstrap=20)
    tournament = Tournament.create(cfg)  # killed before any match ended: the store holds none
    runner = CliRunner()
    listed = runner.invoke(app, ["arena", "ls", "--out-dir", str(tmp_path)])
    assert "0/6" in listed.output
    report = runner.invoke(app, ["arena", "report", "early", "--out-dir", str(tmp_path)])
    assert report.exit_code == 0, report.output
    said = flat(report.output)
    assert "early has no finished matches yet" in said and f"sparring arena resume early --out-dir {tmp_path}" in said
    assert "no finished matches yet" in (tmp_path / "early" / "report.html").read_text()

    first = tournament.schedule(0, [])[0]  # partly finished: the report covers what was played
    tournament.store.add(asyncio.run(play_match(first, cfg, tournament.roster)))
    partial = runner.invoke(app, ["arena", "report", "early", "--out-dir", str(tmp_path)])
    assert partial.exit_code == 0, partial.output
    assert "1 matches" in partial.output and "no finished matches" not in partial.output


def test_a_moved_tournament_reports_and_resumes_where_it_now_is(tmp_path):
    """A tournament directory copied elsewhere under another name (its first home gone) writes
    its reports there and names the resume command that finds it."""
    cfg = TournamentConfig(name="first", game=RPS, roster=PURE, games_per_pairing=1, out_dir=str(tmp_path / "a"),
                           bootstrap=20)
    Tournament.create(cfg).store.close()
    shutil.copytree(tmp_path / "a" / "first", tmp_path / "b" / "moved")
    shutil.rmtree(tmp_path / "a")
    runner = CliRunner()
    report = runner.invoke(app, ["arena", "report", "moved", "--out-dir", str(tmp_path / "b")])
    assert report.exit_code == 0, report.output
    assert f"sparring arena resume moved --out-dir {tmp_path / 'b'}" in flat(report.output)
    assert "no finished matches yet" in (tmp_path / "b" / "moved" / "report.html").read_text()
    resumed = runner.invoke(app, ["arena", "resume", "moved", "--out-dir", str(tmp_path / "b")])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((tmp_path / "b" / "moved" / "report.json").read_text())["matches"] == 6
    assert not (tmp_path / "a").exists()


def test_a_report_of_self_matches_only_shows_no_interval(tmp_path):
    """Self-matches rate nobody: until a rated match ends there is no rating interval."""
    cfg = TournamentConfig(name="selfish", game=RPS, roster=PURE, games_per_pairing=1, self_play=True,
                           out_dir=str(tmp_path), bootstrap=20)
    tournament = Tournament.create(cfg)
    own = next(s for s in tournament.schedule(0, []) if len(set(s.seats.values())) == 1)
    tournament.store.add(asyncio.run(play_match(own, cfg, tournament.roster)))
    report = CliRunner().invoke(app, ["arena", "report", "selfish", "--out-dir", str(tmp_path)])
    assert report.exit_code == 0, report.output
    assert "1 matches" in report.output


def test_a_copy_of_a_shipped_config_is_a_working_template(tmp_path):
    copy = tmp_path / "myrps.yaml"
    shutil.copy(TESTS.parent / "configs" / "arena" / "rps.yaml", copy)
    overrides = ["games_per_pairing=1", "bootstrap=20", f"out_dir={tmp_path}"]
    assert cli._arena_config(str(copy), overrides) == cli._arena_config("rps", overrides)
    result = CliRunner().invoke(app, ["arena", "run", str(copy), *overrides])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "rps" / "report.json").read_text())["matches"] == 4 * 3
    typo = CliRunner().invoke(app, ["arena", "run", str(copy), "gamez_per_pairing=2"])
    assert typo.exit_code == 2 and "Did you mean 'games_per_pairing'?" in flat(typo.output)


def test_a_config_file_that_is_not_yaml_gets_one_line_naming_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nroster: [\n")
    result = CliRunner().invoke(app, ["arena", "run", str(bad)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert flat(result.output).startswith(f"error: {bad}, line 3, column 1: not valid YAML")
    assert "Traceback" not in result.output
    assert len(lines) <= 3  # one line, wrapped at most by the terminal width


def test_report_ls_and_exports(tmp_path):
    run_tournament(tmp_path, name="small")
    runner = CliRunner()
    listed = runner.invoke(app, ["arena", "ls", "--out-dir", str(tmp_path)])
    assert listed.exit_code == 0 and "small" in listed.output and "finished" in listed.output
    report = runner.invoke(app, ["arena", "report", "small", "--out-dir", str(tmp_path), "--json"])
    data = json.loads(report.output)
    assert [row["agent"] for row in data["leaderboard"]] and len(data["payoffs"]) == 3
    assert runner.invoke(app, ["arena", "report", "small", "--out-dir", str(tmp_path)]).exit_code == 0
    home = tmp_path / "small"
    for name in ("report.html", "report.json", "leaderboard.csv", "matches.csv"):
        assert (home / name).stat().st_size > 0
    assert len((home / "matches.csv").read_text().splitlines()) == 1 + 18


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_the_html_report_renders_in_headless_chromium(tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium or Chrome found (Debian: apt-get install chromium)")
    run_tournament(tmp_path, name="view")
    page = (tmp_path / "view" / "report.html").as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=5000", "--dump-dom", page],
                         capture_output=True, text=True, timeout=120)
    assert 'data-rendered="ok"' in dom.stdout, dom.stderr[-2000:]  # every image decoded, leaderboard filled
    assert "Uncaught" not in dom.stderr
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1100,1400", page],
                   capture_output=True, text=True, timeout=120, check=True)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (1400, 1100)
    ink = (pixels.sum(-1) < 600).mean()
    red = ((pixels[..., 0] > 150) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)).sum()
    green = ((pixels[..., 1] > 90) & (pixels[..., 0] < 60) & (pixels[..., 2] < 90)).sum()
    assert ink > 0.01  # text and tables drawn
    assert red > 500 and green > 500  # the payoff heatmap's red (losses) and green (wins) cells


def test_matches_can_run_as_ray_tasks(tmp_path):
    ray = pytest.importorskip("ray")
    tournament = Tournament.create(TournamentConfig(name="r", game=RPS, roster=PURE, games_per_pairing=2,
                                                    out_dir=str(tmp_path), concurrency=4))
    try:
        matches = tournament.run(use_ray=True)
    finally:
        ray.shutdown()
    assert len(matches) == len({m.key for m in matches}) == 12
    assert all(m.status == "done" for m in matches)


def test_running_a_finished_tournament_again_plays_nothing_new(tmp_path):
    tournament, analysis = run_tournament(tmp_path)
    again = Tournament.create(tournament.cfg)
    assert [m.key for m in again.run()] == [m.key for m in analysis.matches]
    with pytest.raises(Exception, match="another config"):
        Tournament.create(TournamentConfig(**{**tournament.cfg.to_dict(), "games_per_pairing": 5}))


def test_the_main_job_ends_with_the_leaderboard_and_the_report_path(tmp_path):
    result = subprocess.run([SPARRING, "arena", "run", "demo", "games_per_pairing=1", f"out_dir={tmp_path}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = flat(result.stdout)
    assert "tiny" in out and "roleplay_keyword" in out and "BT 95%" in out
    assert f"report: {tmp_path / 'demo' / 'report.html'}" in out
    assert (tmp_path / "demo" / "report.html").is_file()


def test_win_rates_carry_wilson_intervals(tmp_path):
    from sparring.arenas.ratings import wilson

    _, analysis = run_tournament(tmp_path)
    rate, lo, hi, n = analysis.win_rates[("paper", "rock")]
    assert (rate, n) == (1.0, 6) and lo == pytest.approx(wilson(6, 6)[0]) and hi == pytest.approx(1.0)
    assert analysis.win_rates[("rock", "paper")][0] == 0.0
    low, high = wilson(50, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)  # the textbook value
    html_text = (tmp_path / "t" / "report.html").read_text()
    assert 'id="win-rates"' in html_text


def test_a_scripted_policy_bound_to_its_thread_keeps_its_moves_on_the_loop():
    import threading

    from sparring.agents import ScriptedPolicy
    from sparring.arenas.runner import Guarded, synchronous_move

    class Bound(ScriptedPolicy):
        off_loop = False

        def respond(self, agent, observation):
            return threading.current_thread().name

    class Free(Bound):
        off_loop = True

    assert synchronous_move(Bound()) is None and synchronous_move(Free()) is not None
    here = threading.current_thread().name
    moved = [asyncio.run(Guarded(cls(), "a", 5.0).act("player_0", {"text": ""})).text for cls in (Bound, Free)]
    assert moved[0] == here and moved[1] != here


def test_a_self_play_payoff_counts_the_agents_own_seats_not_the_fixed_ones():
    from sparring.arenas.metagame import payoff_matrix
    from sparring.arenas.store import MatchRecord

    match = MatchRecord(key="m", index=0, round=0, seed=0, seats={"player_0": "a", "player_1": "a"}, status="done",
                        rewards={"player_0": 1.0, "player_1": 3.0, "expert_small": -8.0})
    assert payoff_matrix(["a"], [match]).payoffs[0, 0] == 2.0


def test_a_tournament_killed_while_it_is_created_can_be_created_again(tmp_path, monkeypatch):
    from sparring.arenas.store import Store

    real = sqlite3.Connection.executemany

    def killed(self, sql, rows):  # the process dies between the tables and their first rows
        if "INSERT INTO meta" in sql:
            raise KeyboardInterrupt
        return real(self, sql, rows)

    monkeypatch.setattr(sqlite3, "connect", lambda path, *a, **k: _Connection(path, killed))
    with pytest.raises(KeyboardInterrupt):
        Store.create(tmp_path / "t", {"name": "t"}, {"a": "rps.rock"})
    monkeypatch.undo()
    assert not list((tmp_path / "t").iterdir())  # no file that is neither a tournament nor free to use
    store = Store.create(tmp_path / "t", {"name": "t"}, {"a": "rps.rock"})
    assert store.config == {"name": "t"}
    store.close()
    opened = Store.open(tmp_path / "t")
    assert opened.config == {"name": "t"}
    opened.close()


class _Connection(sqlite3.Connection):
    """A connection whose ``executemany`` is replaced (the C type's methods cannot be patched)."""

    def __init__(self, path, executemany):
        super().__init__(path)
        self._executemany = executemany

    def executemany(self, sql, rows):
        return self._executemany(self, sql, rows)
