"""Bad input around run directories gets one clear line, not a traceback: a damaged checkpoint
(naming the newest intact earlier one), another recipe or engine named on resume, a budget
the run has already spent; and the command names only the files it wrote."""

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from sparring.cli import app
from sparring.errors import ConfigError, RunError
from sparring.runs import Run, RunSettings, read_metrics

QUIET = ["games_per_update=2", "agent.max_new_tokens=16", "concurrency=4", "tensorboard=false", "plot=false"]


def flat(text: str) -> str:
    """Output without the console's line wrapping."""
    return " ".join(text.split())


def train(*args: str):
    return CliRunner().invoke(app, ["train", *args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A self-play run of two updates with a checkpoint after each (never changed: tests copy it)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    result = train(*QUIET, "updates=2", "checkpoint_every=1", f"run_dir={run}")
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run to damage."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def test_a_moved_run_resumes_where_it_is_now(run):
    result = train("--resume", f"run_dir={run}", "updates=3")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["run_dir"] == str(run.resolve())
    assert [row["update"] for row in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]


def checkpoint(run: Path, update: int) -> Path:
    return run / "checkpoints" / f"update-{update:06d}"


# -- damaged checkpoints ------------------------------------------------------------------------
@pytest.mark.parametrize("damaged", ["model/model.safetensors", "optimizer.pt"])
def test_a_damaged_checkpoint_names_itself_and_the_intact_one_before_which_then_resumes(run, damaged):
    path = checkpoint(run, 2) / damaged
    with path.open("r+b") as f:
        f.truncate(1000)
    result = train("--resume", f"run_dir={run}", "updates=3")
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert text.startswith("error:") and "Traceback" not in result.output
    assert f"checkpoint {checkpoint(run, 2)} is damaged: {damaged} cannot be read" in text
    assert "the newest intact earlier checkpoint is update-000001" in text
    assert f"echo update-000001 > {run / 'latest'}" in text
    assert (run / "latest").read_text().strip() == "update-000002"  # no silent fall-back

    (run / "latest").write_text("update-000001\n")  # what the message says to do
    result = train("--resume", f"run_dir={run}", "updates=2")
    assert result.exit_code == 0, result.output
    assert [row["update"] for row in read_metrics(run)] == [1, 2]
    assert (run / "latest").read_text().strip() == "update-000002"  # the damaged one is written anew


def test_a_file_that_looks_whole_but_does_not_load_is_reported_as_damage(run):
    path = checkpoint(run, 2) / "optimizer.pt"
    data = bytearray(path.read_bytes())
    data[70:90] = b"\xff" * 20  # inside the pickle: the zip's directory still reads
    path.write_bytes(bytes(data))
    result = train("--resume", f"run_dir={run}", "updates=3")
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert f"checkpoint {checkpoint(run, 2)} is damaged: loading it failed (UnpicklingError" in text
    assert "weights_only=False" not in text and "update-000001" in text


def test_with_every_checkpoint_damaged_the_message_says_so(run):
    for update in (1, 2):
        with (checkpoint(run, update) / "optimizer.pt").open("r+b") as f:
            f.truncate(10)
    result = train("--resume", f"run_dir={run}", "updates=3")
    assert result.exit_code == 2, result.output
    assert f"no earlier checkpoint of {run} is intact" in flat(result.output)


def fake_checkpoint(run: Run, update: int) -> None:
    """A checkpoint with the kinds of files trainers write: an adapter, a torch file, a pickle."""
    partial = run.begin_checkpoint(update)
    (partial / "model").mkdir()
    save_file({"lora_A": torch.zeros(64, 64)}, str(partial / "model" / "adapter_model.safetensors"))
    torch.save({"step": update}, partial / "optimizer.pt")
    (partial / "state.pkl").write_bytes(pickle.dumps({"step": update, "name": "example"}))
    run.commit(partial, update, {"elapsed_s": 1.0})


@pytest.mark.parametrize("damaged", ["model/adapter_model.safetensors", "optimizer.pt", "state.pkl"])
def test_the_run_module_checks_every_file_of_the_checkpoint_it_resumes(tmp_path, damaged):
    config = {"updates": 5, "trainer": "selfplay", "train": "selfplay"}
    run = Run(tmp_path / "run", config, resume=False, keep=3)
    for update in (1, 2):
        fake_checkpoint(run, update)
    run.close()
    Run(tmp_path / "run", config, resume=True).close()  # intact: it resumes
    path = checkpoint(tmp_path / "run", 2) / damaged
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(RunError, match=rf"update-000002 is damaged: {damaged} cannot be read .*update-000001"):
        Run(tmp_path / "run", config, resume=True)


def recipe_configs():
    from sparring.agents.learners import TRAINERS
    from sparring.views.rllib import RLlibConfig

    return [config for config, _ in TRAINERS.values()] + [RLlibConfig]


@pytest.mark.parametrize("config", recipe_configs(), ids=lambda c: c.__name__)
def test_every_recipe_takes_its_run_settings_from_the_run_module(config, tmp_path):
    assert issubclass(config, RunSettings) and set(RunSettings.RESUMABLE) <= set(config.RESUMABLE)
    irl = config.__name__ == "IRLRunConfig"
    recipe = {"env": {"id": "sparring/gems-v0"}, "demonstrations": "x.jsonl"} if irl else {
        "env": {"id": "sparring/matrix-v0"}}
    for bad, message in (({"checkpoint_every": 0}, "checkpoint_every=0 must be >= 1"),
                         ({"max_minutes": 0}, r"max_minutes=0(\.0)? must be > 0")):
        with pytest.raises(ConfigError, match=message):
            config.from_dict({**recipe, **bad})


# -- a different recipe or engine on resume ---------------------------------------------------
@pytest.mark.parametrize("recipe", ["router", "rainbow"])
def test_resuming_with_another_recipe_is_refused_by_name(run, recipe):
    result = train(f"train={recipe}", "--resume", f"run_dir={run}", "updates=3")
    assert result.exit_code == 2, result.output
    assert (f"{run} holds a selfplay run; a run resumes with its own recipe: leave out train={recipe}"
            in flat(result.output))
    assert [row["update"] for row in read_metrics(run)] == [1, 2]  # nothing was trained


def test_repeating_the_runs_own_recipe_is_no_change(run):
    result = train("train=selfplay", "--resume", f"run_dir={run}", "updates=2")
    assert "holds" not in flat(result.output) and "already at 2 updates" in flat(result.output)


def test_rllib_refuses_a_run_of_the_sparring_engine_by_name(run):
    result = train("engine=rllib", "--resume", f"run_dir={run}")
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert f"{run} holds a selfplay run of the sparring engine, not an RLlib run" in text
    assert "unknown field" not in text


def test_the_sparring_engine_refuses_an_rllib_run_by_name(tmp_path):
    run = tmp_path / "rllib"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"env": {"id": "sparring/matrix-v0"}, "rllib": "matrix_tft",
                                                 "iterations": 2, "run_dir": str(run)}))
    result = train("--resume", f"run_dir={run}")
    assert result.exit_code == 2, result.output
    assert f"{run} holds an RLlib matrix_tft run: resume it with engine=rllib" in flat(result.output)


# -- budgets already spent ---------------------------------------------------------------------------
def test_resuming_with_fewer_updates_than_done_says_so(run):
    result = train("--resume", f"run_dir={run}", "updates=1")
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert f"{run} is already at 2 updates >= updates=1: nothing left to train" in text
    assert "starting" not in text and "trained 2 updates" not in text


def test_rllib_runs_count_iterations_and_a_spent_time_budget_is_refused_too(tmp_path):
    config = {"iterations": 1, "max_minutes": None}
    run = Run(tmp_path / "run", config, resume=False, budget="iterations")
    fake_checkpoint(run, 1)
    run.close()
    with pytest.raises(RunError, match=r"already at 1 iterations >= iterations=1"):
        Run(tmp_path / "run", config, resume=True, budget="iterations")
    with pytest.raises(RunError, match=r"already trained 0\.0167 minutes >= max_minutes=0\.01"):
        Run(tmp_path / "run", {"iterations": 5, "max_minutes": 0.01}, resume=True, resumable=["iterations", "max_minutes"],
            budget="iterations")


# -- what the run says it wrote ---------------------------------------------------------------------
def test_the_learning_curve_is_named_only_when_drawn(tmp_path):
    for plot in (False, True):
        run = Run(tmp_path / str(plot), {"updates": 1}, resume=False)
        run.metrics.log({"update": 1, "reward/defender": 1.0})
        run.finish("t", plot=plot)
        assert ("learning_curve.png" in run.outputs()) is plot
        assert (tmp_path / str(plot) / "learning_curve.png").is_file() is plot
        assert run.outputs().startswith("checkpoints") and "metrics.jsonl" in run.outputs()


def test_a_run_from_before_recipes_recorded_their_name_resumes_under_its_own(run):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "train"}))
    other = train("train=router", "--resume", f"run_dir={run}", "updates=3")
    assert other.exit_code == 2 and "a run resumes with its own recipe: leave out train=router" in flat(other.output)
    own = train("train=selfplay", "--resume", f"run_dir={run}", "updates=3")
    assert own.exit_code == 0, own.output
    assert json.loads((run / "config.json").read_text())["train"] == "selfplay"  # recorded from now on


# -- one trainer per run, and what a kill leaves ----------------------------------------------------
def test_a_run_in_use_by_another_trainer_is_refused_until_that_trainer_ends(tmp_path):
    config = {"updates": 5}
    run = Run(tmp_path / "run", config, resume=False)
    fake_checkpoint(run, 1)
    with pytest.raises(RunError, match="open already in this process"):
        Run(tmp_path / "run", config, resume=True)
    run.close()
    holder = subprocess.Popen(  # another process has the run open, and is then killed
        [sys.executable, "-c", "import sys; from sparring.runs import Run; "
         f"run = Run({str(tmp_path / 'run')!r}, {config!r}, resume=True); print('open', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(RunError, match=rf"in use by another trainer \(pid {holder.pid}\)"):
            Run(tmp_path / "run", config, resume=True)
    finally:
        holder.kill()
        holder.wait()
    again = Run(tmp_path / "run", config, resume=True)  # the lock went with the killed process
    assert again.update == 1
    again.close()


def test_a_kill_while_pruning_leaves_no_half_checkpoint_to_resume(tmp_path, monkeypatch):
    config = {"updates": 9}
    run = Run(tmp_path / "run", config, resume=False, keep=2)
    for update in (1, 2):
        fake_checkpoint(run, update)

    def killed(path, ignore_errors=False):  # the process dies in the middle of deleting the oldest
        (Path(path) / "optimizer.pt").unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr("sparring.runs.shutil.rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        fake_checkpoint(run, 3)
    monkeypatch.undo()
    run.close()
    assert not checkpoint(tmp_path / "run", 1).exists()  # out of the way before any file went
    (checkpoint(tmp_path / "run", 3) / "state.pkl").write_bytes(b"\x80")
    with pytest.raises(RunError, match="update-000003 is damaged") as error:
        Run(tmp_path / "run", config, resume=True)
    assert "update-000002" in str(error.value) and "update-000001" not in str(error.value)
    shutil.rmtree(checkpoint(tmp_path / "run", 3))
    (tmp_path / "run" / "latest").write_text("update-000002\n")
    resumed = Run(tmp_path / "run", config, resume=True, keep=2)
    fake_checkpoint(resumed, 3)
    resumed.close()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["update-000002", "update-000003"]


def test_a_resume_drops_what_the_updates_it_redoes_wrote(tmp_path):
    config = {"updates": 9}
    run = Run(tmp_path / "run", config, resume=False)
    for update in (1, 2, 3):
        run.metrics.log({"update": update, "reward/defender": float(update)})
        run.trajectory_path(update).parent.mkdir(exist_ok=True)
        run.trajectory_path(update).write_text("{}\n")
        if update == 1:
            fake_checkpoint(run, 1)
    run.close()  # killed after update 3, resumed from the checkpoint at 1
    resumed = Run(tmp_path / "run", config, resume=True)
    resumed.metrics.log({"update": 2, "reward/defender": 2.5})
    resumed.close()
    assert [r["update"] for r in read_metrics(tmp_path / "run")] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "run" / "trajectories").iterdir()) == ["update-000001.jsonl"]
    trained = Run(tmp_path / "run", config, resume=True)  # the trainers' loop: samples written before the row

    def step(update):
        trained.trajectory_path(update).write_text("{}\n")
        return {"reward/defender": 0.0}

    trained.train(step, lambda update, elapsed_s: fake_checkpoint(trained, update), until=3, every=1)
    assert sorted(p.name for p in (tmp_path / "run" / "trajectories").iterdir()) == [
        "update-000001.jsonl", "update-000002.jsonl", "update-000003.jsonl"]
    fresh = Run(tmp_path / "fresh", config, resume=False)  # killed before its first checkpoint
    fresh.metrics.log({"update": 1, "reward/defender": 1.0})
    fresh.trajectory_path(1).parent.mkdir()
    fresh.trajectory_path(1).write_text("{}\n")
    fresh.close()
    again = Run(tmp_path / "fresh", config, resume=True)
    assert again.start is None
    again.metrics.log({"update": 1, "reward/defender": 0.5})
    again.close()
    assert read_metrics(tmp_path / "fresh") == [{"update": 1, "reward/defender": 0.5}]
    assert not list((tmp_path / "fresh" / "trajectories").iterdir())


def test_a_model_pinned_to_a_checkpoint_its_run_has_deleted_says_so(tmp_path):
    from sparring.errors import ModelNotFoundError
    from sparring.runs import resolve_model

    run = Run(tmp_path / "source", {"updates": 5}, resume=False, keep=1)
    fake_checkpoint(run, 1)
    first = str(checkpoint(tmp_path / "source", 1))
    fake_checkpoint(run, 2)  # keep=1: the first is deleted
    run.close()
    with pytest.raises(ModelNotFoundError, match=r"that checkpoint is gone; its run keeps only its newest"):
        resolve_model(first)
