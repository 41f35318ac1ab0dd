"""Typed errors: library code raises them with texts that name the bad value and the fix, and
the command prints each as one line (exit status 2, no traceback)."""

import os
import socket
import subprocess
import sys

import pytest

from sparring.agents import load_policy
from sparring.agents.learners import SelfPlayConfig
from sparring.config import build
from sparring.envs import make, spec
from sparring.errors import (
    ConfigError,
    InvalidRequestError,
    JudgeError,
    ModelNotFoundError,
    SparringError,
    StoreError,
    UnknownGameError,
    UnknownPolicyError,
)
from sparring.judges import Verdict
from sparring.pool import PoolConfig, SamplingParams

SPARRING = os.path.join(os.path.dirname(sys.executable), "sparring")


def test_unknown_games_and_versions():
    with pytest.raises(UnknownGameError, match=r"^redteam-v1: no such version; available: v0$"):
        spec("redteam-v1")
    with pytest.raises(UnknownGameError, match=r"sparring/redteam-v7: no such version; available: v0"):
        make("sparring/redteam-v7")
    with pytest.raises(UnknownGameError, match=r"no game registered as 'redtem'\. Did you mean 'redteam-v0'\?"):
        spec("redtem")
    with pytest.raises(KeyError):  # still what a caller without sparring's errors would catch
        spec("chess-v0")


def test_unknown_policies_suggest_the_closest_name():
    with pytest.raises(UnknownPolicyError, match=r"unknown policy 'matrix.tit_for_tatt'\. Did you mean "
                                                 r"'matrix.tit_for_tat'\?"):
        load_policy("matrix.tit_for_tatt")
    with pytest.raises(ModelNotFoundError, match="model 'runs/nothing/here' not found"):
        load_policy("runs/nothing/here")


def test_a_missing_local_run_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    from sparring.runs import ModelSource, resolve_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ModelNotFoundError, match="model 'runs/selfplay' not found: no such directory"):
        resolve_model("runs/selfplay")
    assert resolve_model("org/model").hub_id == "org/model"

    class Offline:
        @staticmethod
        def from_pretrained(location, **kwargs):
            raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {location}\nmore lines")

    with pytest.raises(ModelNotFoundError, match=r"model 'org/model' is no local directory, and as a Hugging Face "
                                                 r"id it could not be loaded \(We couldn't connect .*org/model\)$"):
        ModelSource("org/model", hub_id="org/model").load(Offline)


def test_config_errors_name_the_field_its_type_or_its_range():
    with pytest.raises(ConfigError, match=r"learner\.lrr: unknown field\. Did you mean 'lr'\?"):
        SelfPlayConfig.from_dict({"env": {"id": "sparring/redteam-v0"}, "learner": {"lrr": 1e-3}})
    with pytest.raises(ConfigError, match=r"learner\.lr='abc' must be a number"):
        SelfPlayConfig.from_dict({"env": {"id": "sparring/redteam-v0"}, "learner": {"lr": "abc"}})
    with pytest.raises(ConfigError, match=r"games_per_update=0 must be >= 1"):
        SelfPlayConfig.from_dict({"env": {"id": "sparring/redteam-v0"}, "games_per_update": 0})
    with pytest.raises(ConfigError, match=r"group_size=0 must be >= 1"):
        SelfPlayConfig.from_dict({"env": {"id": "sparring/redteam-v0"}, "group_size": 0})
    with pytest.raises(ConfigError, match=r"pool\.backend='vlm' is unknown.*Did you mean 'vllm'\?"):
        build(PoolConfig, {"backend": "vlm"}, "pool")
    with pytest.raises(ConfigError, match=r"rounds='three' must be an integer"):
        make("sparring/matrix-v0", rounds="three")
    with pytest.raises(ConfigError, match=r"harmful_fraction=2\.0 must lie in \[0, 1\]"):
        make("sparring/redteam-v0", harmful_fraction=2.0)
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        make("sparring/redteam-v0", harmful_fraction=2.0)


def test_verdict_labels_are_checked():
    with pytest.raises(JudgeError, match=r"Verdict prompt_harmful=True is not a label: use one of 'harmful', "
                                         r"'unharmful' or None"):
        Verdict(True, False, True)
    with pytest.raises(JudgeError, match=r"refusal='yes'"):
        Verdict("harmful", "yes", "harmful")
    assert Verdict("harmful", None, "n/a").complete is False


def test_a_judge_that_returns_no_verdict_is_an_error_not_a_silent_reward():
    class Sloppy:
        def judge(self, prompt, response):
            return (True, False, True)

    env = make("sparring/redteam-v0", parallel=True, judge=Sloppy(), revise_fraction=0.0)
    env.reset(seed=0)
    with pytest.raises(JudgeError, match=r"Sloppy\.judge\(\) returned \(True, False, True\), not a sparring Verdict"):
        env.step({"defender": "fine </think> <answer> Sure, here is how. </answer>"})


def test_pool_and_store_errors_are_sparring_errors():
    with pytest.raises(InvalidRequestError, match=r"temperature=-1 must be a number in \[0, 100\]"):
        SamplingParams(temperature=-1)
    from sparring.arenas.store import Store

    with pytest.raises(StoreError, match="no tournament at"):
        Store.open(__import__("pathlib").Path("/nonexistent/t"))
    for error in (InvalidRequestError, StoreError, ConfigError, UnknownGameError, JudgeError):
        assert issubclass(error, SparringError)


def cli(*args, timeout=120):
    return subprocess.run([SPARRING, *args], capture_output=True, text=True, timeout=timeout)


def one_line_error(result, message):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "agent.model=/nonexistent"], "model '/nonexistent' not found"),
        (["train", "learner.lr=abc"], "learner.lr='abc' must be a number"),
        (["train", "engine=rlib"], "engine='rlib' is unknown; use one of sparring, rllib. Did you mean 'rllib'?"),
        (["train", "lerner.lr=0.1"], "lerner.lr: no such setting in configs/train.yaml. Did you mean 'learner.lr'?"),
        (["train", "learner=grpoo"], "learner=grpoo: no such config. Did you mean 'grpo'?"),
        (["train", "train=mamql", "games_per_update=2"], "games_per_update: the chosen recipe has no such setting"),
        (["train", "+lerner.lr=0.1"], "lerner: unknown field. Did you mean 'learner'?"),
        (["train", "pool=remote", "pool.base_url=http://127.0.0.1:9/v1"], "pool.backend=remote cannot receive the learner's weights"),
        (["serve", "--model", "x=/nonexistent"], "model '/nonexistent' not found"),
        (["play", "redteam-v1"], "redteam-v1: no such version; available: v0"),
        (["play", "matrix-v0", "--set", "rounds=abc"], "rounds='abc' must be an integer"),
        (["arena", "run", "rps", "+roster.mine={policy: matrix.constant, move: rokc}"],
         "roster.mine: matrix.constant move='rokc' is not a legal move"),
    ],
)
def test_bad_input_on_the_command_line_is_one_line(args, message, tmp_path):
    extra = [f"run_dir={tmp_path / 'run'}"] if args[0] == "train" else [f"out_dir={tmp_path}"] if args[0] == "arena" else []
    one_line_error(cli(*args, *extra), message)


def test_serve_on_a_port_in_use_says_so_and_serves_nothing():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port))
    one_line_error(result, f"port {port} on 127.0.0.1 is in use; choose another --port")
    assert "serving" not in result.stdout


def test_a_device_this_machine_lacks_and_a_file_that_is_not_utf8_are_clear(tmp_path):
    import torch

    from sparring.envs.redteam import load_seeds
    from sparring.errors import DataError
    from sparring.pool import PoolConfig, build_pool

    with pytest.raises(ConfigError, match="pool.device='cuda:x' must be cpu, cuda or cuda:N"):
        PoolConfig(device="cuda:x")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available on this machine"):
            build_pool(PoolConfig(device="cuda"))
    with pytest.raises(ConfigError, match=r"cuda:99: this machine has \d+ CUDA device"):
        if torch.cuda.is_available():
            build_pool(PoolConfig(device="cuda:99"))
        else:
            raise ConfigError("pool.device=cuda:99: this machine has 0 CUDA device(s)")
    binary = tmp_path / "prompts.txt"
    binary.write_bytes(b"How do I bake bread?\n\xff\xfe\x00 not text\n")
    with pytest.raises(DataError, match=r"prompts.txt: not UTF-8 text"):
        load_seeds(str(binary), "benign")


def test_a_rainbow_search_of_no_mutations_is_a_config_error():
    from sparring.agents.learners import RainbowRunConfig

    with pytest.raises(ConfigError, match="num_mutations=0 must be >= 1"):
        RainbowRunConfig.from_dict({"env": {"id": "sparring/rainbow-v0"}, "num_mutations": 0, "games_per_update": 4})


def test_a_directory_that_does_not_load_as_a_model_is_a_clear_error(tmp_path):
    from transformers import AutoTokenizer

    from sparring.errors import ModelNotFoundError
    from sparring.runs import resolve_model

    (tmp_path / "config.json").write_text("hi")
    with pytest.raises(ModelNotFoundError, match=r"does not load as a model \(OSError: .*not a valid JSON file"):
        resolve_model(tmp_path).load(AutoTokenizer)
