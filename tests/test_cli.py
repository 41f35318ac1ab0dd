"""The real `sparring` command, run as a user runs it."""

import os
import subprocess
import sys
import zipfile

import pytest
from typer.testing import CliRunner

from sparring.cli import app

runner = CliRunner()


def test_envs_lists_every_game_and_view():
    result = runner.invoke(app, ["envs"])
    assert result.exit_code == 0
    for gid in ("sparring/redteam-v0", "sparring/matrix-v0", "sparring/RedTeamDefender-v0"):
        assert gid in result.output


def test_play_scripted_only_hides_reasoning_unless_revealed():
    args = ["play", "redteam-v0", "--no-human", "--seed", "0", "--set", "revise_fraction=1.0"]
    hidden = runner.invoke(app, args)
    assert hidden.exit_code == 0, hidden.output
    assert "I will use the role-play style" not in hidden.output
    assert "hidden reasoning," in hidden.output
    shown = runner.invoke(app, [*args, "--reveal"])
    assert "I will use the role-play style" in shown.output


def test_play_human_defender_sees_own_reasoning_not_the_attackers():
    result = runner.invoke(
        app, ["play", "redteam-v0", "--seed", "0", "--set", "revise_fraction=1.0", "--seat", "attacker=redteam.roleplay"],
        input="it looks risky\nI'm sorry, I can't help with that.\n",
    )
    assert result.exit_code == 0, result.output
    assert "your turn (defender)" in result.output
    assert "(hidden reasoning) it looks risky" in result.output
    assert "I will use the role-play style" not in result.output
    assert "defender (human): reward" in result.output


def test_play_matrix_with_seats_and_game_arguments():
    result = runner.invoke(app, ["play", "matrix-v0", "--no-human", "--seat", "player_0=matrix.constant",
                                 "--seat", "player_1=matrix.tit_for_tat", "--set", "rounds=3", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "player_1 (matrix.tit_for_tat): reward +9" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [(["play", "redteam-v9"], "redteam-v9: no such version; available: v0"), (["play", "redtem-v0"], "Did you mean"), (["play", "matrix-v0", "--seat", "player_9=human"], "no seat"),
     (["play", "matrix-v0", "--seat", "player_0=nobody"], "unknown policy"),
     (["play", "matrix-v0", "--set", "rounds=0"], "rounds=0"), (["demo", "games=0"], "games=0")],
)
def test_bad_input_gives_a_clear_error(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output


def test_user_policy_class_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_agents.py").write_text(
        "from sparring.agents import ScriptedPolicy\n"
        "class AlwaysRock(ScriptedPolicy):\n"
        "    name = 'rock'\n"
        "    def respond(self, agent, observation):\n"
        "        return 'I choose [rock]'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = runner.invoke(app, ["play", "matrix-v0", "--no-human", "--set", "game=rock_paper_scissors",
                                 "--seat", "player_0=my_agents:AlwaysRock", "--seat", "player_1=matrix.constant"])
    assert result.exit_code == 0, result.output
    assert "player_0 (my_agents:AlwaysRock): reward +0" in result.output


def test_demo_runs_from_the_console_script():
    exe = os.path.join(os.path.dirname(sys.executable), "sparring")
    out = subprocess.run([exe, "demo", "games=2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "redteam-v0" in out.stdout and "tit_for_tat" in out.stdout


def test_wheel_carries_configs_and_seed_data(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), root], check=True, timeout=300)
    (wheel,) = tmp_path.glob("sparring-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("sparring/configs/demo.yaml", "sparring/configs/env/redteam.yaml",
                     "sparring/envs/redteam/data/train.jsonl", "sparring/envs/redteam/data/heldout.jsonl"):
        assert expected in names


def _ignore_sigint() -> None:
    """What a shell does to a job it starts in the background."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("how", ["sigint", "sigint-ignored", "sigterm"])
def test_serve_answers_on_loopback_and_stops_on_ctrl_c(tmp_path, how):
    import json
    import signal
    import socket
    import time
    import urllib.request

    from lm import make_model, make_tokenizer

    make_model().save_pretrained(tmp_path)
    make_tokenizer().save_pretrained(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = os.path.join(os.path.dirname(sys.executable), "sparring")
    server = subprocess.Popen([exe, "serve", "--model", f"p={tmp_path}", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=_ignore_sigint if how == "sigint-ignored" else None)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert json.load(r)["policies"] == ["p"]
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()
                time.sleep(0.3)
        body = json.dumps({"model": "p", "prompt": "how can I help", "max_tokens": 4, "temperature": 0}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            assert json.load(r)["choices"][0]["finish_reason"] == "length"
        server.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
        assert server.wait(timeout=30) == 0
        assert f"serving ['p'] on http://127.0.0.1:{port}/v1" in server.stdout.read()
    finally:
        if server.poll() is None:  # whatever happened, leave no server behind
            server.kill()
            server.wait()


AGENTS = (
    "from sparring.agents import ScriptedPolicy\n"
    "class Boom(ScriptedPolicy):\n"
    "    def respond(self, agent, observation):\n"
    "        raise RuntimeError('boom')\n"
    "NUMBER = 3\n"
    "from sparring.agents import Policy\n"
    "class Number(Policy):\n"
    "    async def act(self, agent, observation):\n"
    "        return 3\n"
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["play", "matrix-v0", "--set", "game=[rps"], "--set 'game=[rps': '[rps' is not a valid YAML value"),
        (["play", "matrix-v0", "--seat", "player_0={policy: x"], "is not a valid YAML value"),
        (["play", "matrix-v0", "--seat", "player_0=./no[/]where"], "./no[/]where"),  # not read as markup
        (["play", "matrix-v0", "--seat", "player_0=./dir:smile:"], "'./dir:smile:'"),  # nor as an emoji code
        (["play", "matrix-v0", "--seat", "player_0=my_agents:Boom"],
         "the policy of seat player_0 (my_agents:Boom) raised RuntimeError: boom"),
        (["play", "matrix-v0", "--seat", "player_0=my_agents:NUMBER"], "names a int, not a class or function"),
        (["play", "gems-v0", "--seat", "blue={policy: irl}"], "needs argument(s) 'checkpoint'"),
        (["play", "gems-v0", "--seat", "blue={policy: gems.expert, gamma: 2}"], "gamma=2 must lie in [0, 1)"),
        (["play", "gems-v0", "--seat", "blue={policy: gems.expert, lam: -1}"], "lam=-1 must be > 0"),
        (["play", "gems-v0", "--set", "layout_seed=-1"], "layout_seed=-1 must be an integer >= 0"),
        (["serve", "--port", "99999"], "--port=99999 must lie in 0..65535"),
        (["play", "matrix-v0", "--seed", "-1"], "seed=-1: seeds are integers >= 0"),
        (["record", "matrix-v0", "--out", "x.jsonl", "--seed", "-3"], "seed=-3: seeds are integers >= 0"),
        (["play", "matrix-v0", "--seat", "player_0=my_agents:Number"], "act returned int, not an Action"),
        (["play", "matrix-v0", "--seat", "player_0={policy: tiny, model: tiny}"], "names a model itself"),
        (["demo", "games=1", "attackers=[my_agents:Boom]", "defenders=[redteam.refuse]", "~matrix_players.llm"],
         "the policy of seat attacker (my_agents:Boom) raised RuntimeError: boom"),
    ],
)
def test_bad_input_is_one_clear_line_as_written(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_agents.py").write_text(AGENTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_agents", raising=False)  # another test's module of that name
    result = runner.invoke(app, [*args, *(["--no-human"] if args[0] == "play" else [])])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and message in result.output, result.output
    lines = result.output.strip().splitlines()  # a game that starts names its seats first
    assert lines[-1].startswith("error: ") and len(lines) <= 2, result.output


def test_record_keeps_an_existing_file_unless_forced(tmp_path):
    out = tmp_path / "demos.jsonl"
    out.write_text("precious\n")
    args = ["record", "matrix-v0", "--out", str(out), "--episodes", "1", "--set", "rounds=1"]
    kept = runner.invoke(app, args)
    assert kept.exit_code == 2 and "exists already; pass --force" in kept.output and out.read_text() == "precious\n"
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert out.read_text() != "precious\n"


def test_numeric_games_leave_no_seat_to_a_human_and_policies_keep_their_own_seed(tmp_path):
    gems = runner.invoke(app, ["play", "gems-v0", "--seed", "0"])
    assert gems.exit_code == 0, gems.output
    assert "no seat for you" in gems.output and "your turn" not in gems.output
    seated = ["play", "matrix-v0", "--no-human", "--set", "rounds=8", "--seat",
              "player_0={policy: matrix.random, seed: 5}", "--seat", "player_1={policy: matrix.random, seed: 6}"]
    results = {runner.invoke(app, seated).output.split("game record")[-1] for _ in range(3)}
    assert len(results) == 1  # no game seed: each policy plays from the seed it was given


def test_written_files_get_the_mode_open_would_give_them(tmp_path):
    out = tmp_path / "demos.jsonl"
    old = os.umask(0o022)
    try:
        assert runner.invoke(app, ["record", "matrix-v0", "--out", str(out), "--episodes", "1",
                                   "--set", "rounds=1"]).exit_code == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644


def test_a_seat_spec_written_as_a_mapping_plays_like_its_name():
    human = runner.invoke(app, ["play", "matrix-v0", "--seat", "player_0={policy: human}", "--set", "rounds=1"],
                          input="[rock]\n")
    assert human.exit_code == 0, human.output
    assert "your turn (player_0)" in human.output and "player_1 (matrix.tit_for_tat)" in human.output
    llm = runner.invoke(app, ["play", "matrix-v0", "--no-human", "--seat", "player_0={policy: llm, temperature: 0}",
                              "--set", "rounds=1", "--model", "./no-such-model"])
    assert llm.exit_code == 2 and "no-such-model" in llm.output  # --model reaches an llm seat given as a mapping
