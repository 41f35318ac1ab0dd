"""Runs on disk: one module for every trainer's run directory, checkpoints and weights.

A run directory holds

- ``config.json``: the recipe the run was started with;
- ``metrics.jsonl``: one line per update, flushed as written (a line cut by a kill is skipped);
- ``checkpoints/update-NNNNNN/``: whatever the trainer saves (``model/`` loads with
  ``from_pretrained``; an RLlib run saves ``algorithm/``) plus ``trainer_state.json``. A
  checkpoint is built under a ``.partial`` name and renamed into place, then ``latest`` (the
  name of the newest complete one) is replaced atomically, so a kill at any moment loses
  nothing and never leaves a half-written checkpoint where a reader would look;
- ``trajectories/update-NNNNNN.jsonl`` when the recipe saves its samples;
- ``tensorboard/`` and ``learning_curve.png``;
- ``.lock``: locked by the one trainer that has the run open (a second is refused).

:class:`RunSettings` is what every recipe's config says about its run (``run_dir``, ``seed``,
``max_minutes``, ``checkpoint_every``, ``keep_checkpoints``, ``tensorboard``, ``plot``,
``progress_every_s``, which of them may change on resume); each trainer's config inherits it
and opens its directory with :meth:`RunSettings.open_run`.

:class:`Run` opens a directory for a new run (refusing one that already holds a run) or for
resuming. A resume is refused, with one :class:`~sparring.errors.RunError` that says what to do,
when the command names another recipe (``train=router`` for a ``selfplay`` run: each recipe
records its name, :data:`RECIPE_KEYS`) or another engine (:func:`check_engine`), changes a
field the trainer does not allow to change, asks for a budget the run has already spent, or
when the checkpoint to resume from is damaged (:func:`checkpoint_damage`, :meth:`Run.restore`).
Since a checkpoint is only ever renamed into place complete, a damaged one was changed after
it was saved; the error names the newest earlier intact checkpoint rather than falling back
to it silently. :func:`resolve_model` says where a model named by a spec lives: ``tiny``, a model
directory, a saved LoRA adapter, a checkpoint or a whole run. :func:`read_safetensors` loads
weights from a file or a directory. Paths are made absolute here: Ray and RLlib resolve
relative paths against their own working directories.
"""

from __future__ import annotations

import json
import os
import pickletools
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sparring.config import Config, above, at_least
from sparring.errors import DataError, ModelNotFoundError, NotFoundError, RunError, SparringError
from sparring.paths import TINY_MODEL

LATEST = "latest"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
STATE = "trainer_state.json"
CURVE = "learning_curve.png"
LOCK = ".lock"
TRAJECTORIES = "trajectories"
#: The config groups a recipe is chosen by: ``train=NAME`` (``configs/train/``) and, with
#: ``engine=rllib``, ``rllib=NAME`` (``configs/rllib/``). Each recipe records its own name under
#: its group's key, so the run's ``config.json`` says which recipe it holds and a resume that
#: names another one can be refused.
RECIPE_KEYS = ("train", "rllib")

T = TypeVar("T")


# -- files written atomically ----------------------------------------------------------------
def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(temporary)`` writes the file, which is then flushed to disk and moved to
    ``path``: readers never see half a file, concurrent writers each write a file of their
    own (the last move wins), and a writer that fails leaves nothing behind."""
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".partial")
    os.close(fd)
    try:
        as_opened(partial)
        write(Path(partial))
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def as_opened(path: str | Path) -> None:
    """Give a file made by ``tempfile.mkstemp`` (its owner's only) the mode ``open()`` would
    have: a file renamed into place is as readable as any other the user writes."""
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    try:  # Linux says it; elsewhere it is read by setting it
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda partial: partial.write_text(text, encoding="utf-8", newline=""))


def _flush_tree(directory: Path, files: bool = True) -> None:
    """Flush ``directory`` 's files (and the directory's own entries) to disk. A rename orders
    only what the OS holds in memory: after a power cut, a checkpoint renamed into place could
    otherwise hold files cut short, which a kill alone never leaves."""
    for path in (p for p in directory.rglob("*") if p.is_file()) if files else ():
        try:
            with path.open("r+b") as f:
                os.fsync(f.fileno())
        except OSError:  # a file system that cannot sync (some network and FUSE mounts): best effort
            pass
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # a platform whose directories cannot be opened (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- where models and checkpoints are --------------------------------------------------------
def _pointed(run_dir: Path) -> Path | None:
    """The checkpoint a run's ``latest`` pointer names (``None`` without a pointer)."""
    pointer = run_dir / LATEST
    if not pointer.is_file():
        return None
    return run_dir / "checkpoints" / pointer.read_text(encoding="utf-8").strip()


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory (``None`` before the first)."""
    path = _pointed(Path(run_dir))
    if path is not None and not (path / STATE).is_file():
        raise RunError(f"{Path(run_dir) / LATEST} names {path}, which is not a complete checkpoint (no {STATE}; "
                       f"the run directory was changed by hand); {_resume_advice(path)}")
    return path


# -- damaged checkpoints ---------------------------------------------------------------------
def checkpoint_damage(checkpoint: Path) -> str | None:
    """What is wrong with a committed checkpoint's files (the first unreadable one and why),
    or ``None`` when every file reads.

    Checkpoints are built under a ``.partial`` name and renamed into place only when complete,
    so a kill never leaves a damaged one: a file that does not read was damaged after it was
    saved (a copy cut short, a full disk, an edit), and resuming must not go on from it. Each
    file is checked by its format alone, quickly and without loading a tensor or running a
    pickle: JSON parses, a safetensors header covers its file, a ``.pt`` file (``torch.save``
    writes a zip archive) has its zip directory, a pickle's opcodes run to its end. Damage
    inside the bytes of a tensor passes here; :meth:`Run.restore` reports what the trainer's
    own loader finds."""
    if not (checkpoint / STATE).is_file():
        return f"no {STATE}"
    for path in sorted(checkpoint.rglob("*")):
        check = _FORMAT_CHECKS.get(path.suffix)
        if check is None or not path.is_file():
            continue
        try:
            check(path)
        except Exception as error:  # whatever a reader of a cut or overwritten file raises
            return f"{path.relative_to(checkpoint)} cannot be read ({_reason(error)})"
    return None


def _json_parses(path: Path) -> None:
    json.loads(path.read_text(encoding="utf-8"))


def _safetensors_header_reads(path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt"):  # checks that the header's tensors cover the file
        pass


def _zip_directory_reads(path: Path) -> None:
    with zipfile.ZipFile(path):  # the directory is at the end: a file cut short has none
        pass


def _pickle_runs_to_stop(path: Path) -> None:
    with path.open("rb") as f:
        for _ in pickletools.genops(f):  # reads opcodes, runs none
            pass


_FORMAT_CHECKS: dict[str, Callable[[Path], None]] = {
    ".json": _json_parses, ".safetensors": _safetensors_header_reads, ".pt": _zip_directory_reads,
    ".pkl": _pickle_runs_to_stop,
}


def _reason(error: BaseException) -> str:
    """An error in a few words for a one-line message: its type (unless it is sparring's own,
    which reads as a sentence) and the first sentence of its text, since readers of
    checkpoint formats explain at length (torch suggests ``weights_only=False``, which is no
    cure for a damaged file)."""
    text = str(error).strip()
    first = re.split(r"(?<=\.)\s", text.splitlines()[0], maxsplit=1)[0] if text else ""
    if isinstance(error, SparringError) and first:
        return first
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _number(checkpoint: Path) -> int | None:
    """The update of a checkpoint directory (``update-000012`` → 12; ``None`` for any other
    name, e.g. one being written, ``update-000012.partial``)."""
    digits = checkpoint.name.removeprefix("update-")
    return int(digits) if checkpoint.name.startswith("update-") and digits.isdigit() else None


def newest_intact_before(checkpoint: Path) -> Path | None:
    """The newest checkpoint of the same run older than ``checkpoint`` whose files all read."""
    limit = _number(checkpoint)
    earlier = {n: p for p in checkpoint.parent.glob("update-*")
               if p.is_dir() and p != checkpoint and (n := _number(p)) is not None and (limit is None or n < limit)}
    return next((earlier[n] for n in sorted(earlier, reverse=True) if checkpoint_damage(earlier[n]) is None), None)


def _resume_advice(damaged: Path) -> str:
    """How to go on when ``damaged`` cannot be resumed from. The run module resumes from the
    checkpoint its ``latest`` pointer names, so pointing it at an earlier intact checkpoint is
    how to resume from there (the updates after it are redone). That is left to the user, never
    done silently: it throws those updates away, and a damaged file may mean a failing disk."""
    run_dir = damaged.parent.parent
    earlier = newest_intact_before(damaged)
    if earlier is None:
        return f"no earlier checkpoint of {run_dir} is intact: start the run again in another run_dir="
    return (f"the newest intact earlier checkpoint is {earlier.name}: to resume from it (redoing the updates "
            f"after it), write its name into {run_dir / LATEST} (echo {earlier.name} > {run_dir / LATEST}) "
            "and run --resume again")


def damaged_checkpoint(checkpoint: Path, why: str) -> RunError:
    """The one-line error for a checkpoint that cannot be resumed from: which one, why, and the
    newest earlier intact one to resume from instead."""
    return RunError(f"checkpoint {checkpoint} is damaged: {why}; {_resume_advice(checkpoint)}")


_CORRUPT = re.compile(r"PytorchStreamReader|central directory|invalid header|header too large|unexpected end|"
                      r"truncated|ran out of input|Expecting value|not a zip file|EOF", re.IGNORECASE)
"""What readers of cut or overwritten files say (torch's zip reader, safetensors, pickle, JSON)."""


def _is_damage(error: Exception) -> bool:
    """Whether an error a trainer's loader raised says that the checkpoint's files are bad (cut,
    malformed, missing), by its kind or the words readers use for it. Anything else keeps its
    own message: a checkpoint that does not fit the model, one saved on a device this machine
    lacks, a format from another version, or a bug."""
    if isinstance(error, (DataError, NotFoundError, EOFError, zipfile.BadZipFile, json.JSONDecodeError,
                          UnicodeDecodeError)):
        return True
    if isinstance(error, SparringError):
        return False
    return type(error).__name__ in ("SafetensorError", "UnpicklingError") or bool(_CORRUPT.search(str(error)))


def checkpoint_of(path: str | Path) -> Path:
    """A checkpoint directory given itself or its run directory (the checkpoint its
    ``latest`` pointer names), as an absolute path."""
    path = Path(path).expanduser()
    pointed = _pointed(path)
    return (pointed if pointed is not None and pointed.is_dir() else path).resolve()


def pinned(spec: Any) -> Any:
    """A model spec that names a run directory, as the path of the checkpoint the run is at
    now; anything else as it is. A run records the models it starts from pinned, so a resume
    finds the same ones even after the run they came from has gone on (a resume that names
    the run again is then refused as a changed recipe, not silently given newer weights)."""
    if not isinstance(spec, (str, Path)) or str(spec) == "tiny":
        return spec
    pointed = _pointed(Path(spec).expanduser())
    return str(pointed.resolve()) if pointed is not None and pointed.is_dir() else spec


@dataclass(frozen=True)
class ModelSource:
    """Where a model lives: ``path`` (a local directory) or ``hub_id`` (a Hugging Face id);
    for a saved LoRA adapter, ``base`` is the spec of the model it adapts."""

    spec: str
    path: Path | None = None
    hub_id: str | None = None
    base: str | None = None

    @property
    def location(self) -> str:
        return str(self.path) if self.path is not None else str(self.hub_id)

    @property
    def is_adapter(self) -> bool:
        return self.base is not None

    def load(self, kind: Any, **kwargs: Any) -> Any:
        """``kind.from_pretrained(location, **kwargs)`` for a transformers Auto class; a hub id
        that cannot be loaded (no network, a misspelt id) or a local directory whose files do
        not load (a broken ``config.json``, no weights) is a :class:`ModelNotFoundError`."""
        try:
            return kind.from_pretrained(self.location, **kwargs)
        except (OSError, ValueError) as error:
            if self.hub_id is None:  # a directory that looks like a model and does not load as one
                raise ModelNotFoundError(f"model {self.spec!r}: {self.location} does not load as a model "
                                         f"({type(error).__name__}: {str(error).strip().splitlines()[0]})") from None
            if not isinstance(error, OSError):
                raise
            raise ModelNotFoundError(f"model {self.spec!r} is no local directory, and as a Hugging Face id it "
                                     f"could not be loaded ({str(error).splitlines()[0]})") from None


def resolve_model(spec: str | Path) -> ModelSource:
    """Where the model named by ``spec`` lives: ``tiny`` (the shipped model), a model
    directory (``config.json``), a saved LoRA adapter (``adapter_config.json``), a training
    checkpoint (its ``model/``) or run (its latest checkpoint); anything else that looks like
    ``org/name`` and is not a local path is taken for a Hugging Face id."""
    text = str(spec)
    if text == "tiny":
        return ModelSource(text, path=TINY_MODEL)
    path = checkpoint_of(text)
    if (path / "model").is_dir():
        path = path / "model"
    if (path / "adapter_config.json").is_file():
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        base = config.get("base_model_name_or_path")
        if not base:
            raise ModelNotFoundError(f"{text}: the adapter's adapter_config.json names no base_model_name_or_path")
        return ModelSource(text, path=path, base=str(base))
    if (path / "config.json").is_file():
        return ModelSource(text, path=path)
    if path.exists():
        raise ModelNotFoundError(f"{text}: no model here (expected config.json, adapter_config.json, a "
                                 "checkpoint's model/ or a run's latest checkpoint)")
    if _number(path) is not None and path.parent.name == "checkpoints" and path.parent.is_dir():
        raise ModelNotFoundError(
            f"model {text!r}: that checkpoint is gone; its run keeps only its newest keep_checkpoints and has "
            f"deleted it since. A run that started from it (it records the checkpoint, not the run) resumes only "
            f"with it back in place; start new runs from one that is kept, e.g. {path.parent.parent} (its latest)")
    looks_local = text.startswith((".", "/", "~")) or Path(text.split("/")[0]).expanduser().is_dir()
    if text.count("/") == 1 and not looks_local and " " not in text:
        return ModelSource(text, hub_id=text)
    raise ModelNotFoundError(f"model {text!r} not found: no such directory, and not a hub id (hub ids look like "
                             "'org/name'); give 'tiny', a model directory, a checkpoint or a run directory")


# -- safetensors weights ---------------------------------------------------------------------
def safetensors_files(path: str | Path) -> list[Path]:
    """The safetensors files of a checkpoint: one file, or every ``*.safetensors`` of a
    directory."""
    path = Path(path)
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    if not files or not all(f.is_file() and f.suffix == ".safetensors" for f in files):
        raise ModelNotFoundError(f"no safetensors checkpoint at {path}")
    return files


def read_safetensors(path: str | Path) -> dict[str, Any]:
    """Every tensor of a safetensors file or directory, on the CPU."""
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for f in safetensors_files(path):
        state.update(load_file(str(f)))
    return state


def safetensors_shapes(path: str | Path) -> dict[str, Any]:
    """A checkpoint's tensors as empty meta tensors of their shapes (only headers are read)."""
    import torch
    from safetensors import safe_open

    shapes = {}
    for f in safetensors_files(path):
        with safe_open(str(f), framework="pt") as handle:
            for key in handle.keys():
                shapes[key] = torch.empty(handle.get_slice(key).get_shape(), device="meta")
    return shapes


# -- a run -----------------------------------------------------------------------------------
def saved_config(run_dir: str | Path) -> dict[str, Any]:
    """The recipe a run was started with (its ``config.json``)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunError(f"nothing to resume in {Path(run_dir)} (no {CONFIG}); start the run without --resume")
    return json.loads(path.read_text(encoding="utf-8"))


def engine_of(recipe: Mapping[str, Any]) -> str:
    """The engine a recipe is for: ``sparring`` recipes name their trainer (``trainer:``, every
    ``configs/train/`` recipe and every trainer's config has it), RLlib's (``engine=rllib``) do
    not."""
    return "sparring" if "trainer" in recipe else "rllib"


def describe_run(recipe: Mapping[str, Any]) -> str:
    """A run as the command line chooses its recipe, for messages: ``a router run``, ``an
    RLlib matrix_tft run`` (a run made before recipes recorded their name: its trainer)."""
    if engine_of(recipe) == "rllib":
        return f"an RLlib {recipe['rllib']} run" if recipe.get("rllib") else "an RLlib run"
    name = str(recipe.get("train") or recipe.get("trainer") or "selfplay")
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} run"


def recipe_matches(saved: Mapping[str, Any], recipe: Mapping[str, Any]) -> bool:
    """Whether a run's saved recipe could be the composed ``recipe``: the same name when the
    run recorded one, else (a run from before recipes recorded their name) the same trainer
    and game."""
    for key in RECIPE_KEYS:
        if recipe.get(key) and saved.get(key):
            return recipe[key] == saved[key]
    return (recipe.get("trainer") == saved.get("trainer")
            and (recipe.get("env") or {}).get("id") == (saved.get("env") or {}).get("id"))


def check_engine(values: Mapping[str, Any], engine: str) -> None:
    """Refuse a recipe of ``engine`` (``sparring`` or ``rllib``) whose ``run_dir`` holds a run of
    the other engine. Each engine types its own recipes, so resuming the other's saved recipe
    would fail as a list of unknown fields; this names what the run is and how to resume it.
    Called before the recipe is typed (by :func:`~sparring.agents.learners.config_for` and
    :meth:`~sparring.views.rllib.RLlibConfig.from_dict`)."""
    run_dir = values.get("run_dir")
    path = Path(str(run_dir)).expanduser() / CONFIG if run_dir else None
    if path is None or not path.is_file():
        return
    try:
        held = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return  # not a run's recipe: the run itself says what is wrong with the directory
    if not isinstance(held, dict) or engine_of(held) == engine:
        return
    if engine == "rllib":
        raise RunError(f"{run_dir} holds {describe_run(held)} of the sparring engine, not an RLlib run: resume it "
                       f"without engine=rllib (sparring train --resume run_dir={run_dir}), or choose another run_dir=")
    raise RunError(f"{run_dir} holds {describe_run(held)}: resume it with engine=rllib (sparring train engine=rllib "
                   f"--resume run_dir={run_dir}), or choose another run_dir=")


def _hold(directory: Path) -> Any:
    """An exclusive lock on a run directory, held for as long as a trainer has it open (the
    returned file; ``None`` where the platform has no advisory locks). Two trainers on one run
    (a job retried while the first still runs) would redo the same updates, each deleting the
    other's half-written checkpoint and publishing its own. The lock goes with the process,
    however it ends, so a killed run leaves none behind."""
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    handle = (directory / LOCK).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        if holder == str(os.getpid()):
            raise RunError(f"{directory} is open already in this process: close the trainer that has it "
                           "first") from None
        raise RunError(f"{directory} is in use by another trainer{f' (pid {holder})' if holder else ''}: wait for "
                       "it to end, or choose another run_dir=") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class Run:
    """A run directory opened for a trainer. ``Run(dir, config, resume=...)`` refuses to
    start over a run, or to resume one with another recipe, from a damaged checkpoint or with
    a budget already spent (``budget``: the config field that counts the run's updates);
    :attr:`start` is the checkpoint to resume from (``None``: start from scratch, also when a
    resumed run was killed before its first checkpoint), which the trainer loads through
    :meth:`restore`. One trainer at a time has a run open (:func:`_hold`): a second one is
    refused until :meth:`close`."""

    def __init__(self, directory: str | Path, config: dict[str, Any], *, resume: bool,
                 resumable: Iterable[str] = (), keep: int = 2, tensorboard: bool = False, budget: str = "updates"):
        self.dir = Path(directory).expanduser().resolve()
        self.keep = keep
        self.config = json.loads(json.dumps(config))
        self.resumed = resume
        self._metrics: MetricsLog | None = None
        if not resume:
            self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = _hold(self.dir) if self.dir.is_dir() else None
        try:
            self._open(resume, set(resumable), budget)
        except BaseException:
            self.close()
            raise
        self._tensorboard = tensorboard
        self.curve: Path | None = None
        """``learning_curve.png`` once :meth:`finish` has drawn it (``None``: not drawn)."""

    def _open(self, resume: bool, resumable: set[str], budget: str) -> None:
        if resume:
            self._check_same_recipe(saved_config(self.dir), resumable)
            self.start = latest_checkpoint(self.dir)
            why = checkpoint_damage(self.start) if self.start is not None else None
            if why is not None:
                raise damaged_checkpoint(self.start, why)
        else:
            metrics = self.dir / METRICS
            if latest_checkpoint(self.dir) is not None or (metrics.is_file() and metrics.stat().st_size):
                raise RunError(f"{self.dir} already holds a run; resume it (--resume) or choose another run_dir=")
            self.start = None
        self.state: dict[str, Any] = (json.loads((self.start / STATE).read_text(encoding="utf-8"))
                                      if self.start is not None else {"update": 0, "elapsed_s": 0.0})
        if resume:
            self._check_budget_left(budget)
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._lock is None:  # a resume of a directory that did not exist yet
            self._lock = _hold(self.dir)
        atomic_write_text(self.dir / CONFIG, json.dumps(self.config, indent=1))

    def _check_same_recipe(self, before: dict[str, Any], allowed: set[str]) -> None:
        """Refuse to resume with anything the trainer does not allow to change. A recipe named
        on the command line comes first: ``train=router`` for a ``selfplay`` run would keep
        the run's own recipe (only the fields named on the command line are taken from it),
        so it is refused as a changed ``env=`` is. Repeating the run's own recipe is fine."""
        for key in RECIPE_KEYS:
            held, asked = before.get(key) or "", self.config.get(key) or ""
            if not asked:  # a config built without a recipe name (from Python) keeps the run's
                if held:
                    self.config[key] = held
                continue
            if not held:  # a run from before recipes recorded their name (checked by recipe_matches)
                continue
            if held != asked:
                raise RunError(f"{self.dir} holds {describe_run(before)}; a run resumes with its own recipe: leave "
                               f"out {key}={asked}, or start the {asked} recipe in another run_dir=")
        moved = {"run_dir"}  # where the run is now: a run directory may be moved or copied, and resumed there
        changed = sorted(k for k in set(before) | set(self.config)
                         if k not in allowed | moved and k not in RECIPE_KEYS and before.get(k) != self.config.get(k))
        if changed:
            raise RunError(f"resuming {self.dir} with a different {', '.join(changed)}: only "
                           f"{', '.join(sorted(allowed))} may change when a run resumes")

    def _check_budget_left(self, budget: str) -> None:
        """Refuse to resume a run that has already spent the budget asked for (``updates=5`` for
        a run at 20). The update loop would do nothing, and the command would still report
        the run as trained, as if the budget had been used; saying so is the one useful
        answer, and an error (as for nothing to resume) keeps scripts from reading it as done."""
        until, done = self.config.get(budget), self.update
        if isinstance(until, int) and done >= until:
            raise RunError(f"{self.dir} is already at {done} {budget} >= {budget}={until}: nothing left to train; "
                           f"resume with {budget}= above {done} to go on")
        minutes, spent = self.config.get("max_minutes"), float(self.state["elapsed_s"]) / 60
        if isinstance(minutes, (int, float)) and spent >= minutes:
            raise RunError(f"{self.dir} has already trained {spent:.3g} minutes >= max_minutes={minutes:g}: nothing "
                           "left to train; resume with a larger max_minutes= (or max_minutes=null) to go on")

    def restore(self, load: Callable[[Path], T]) -> T | None:
        """``load(checkpoint)`` on the checkpoint being resumed (``None`` when starting from
        scratch): the trainer's own reader of what it saved. A file can pass
        :func:`checkpoint_damage` and still fail to load (bytes damaged inside a tensor or a
        pickle); that failure is reported as a damaged checkpoint too, naming the newest
        earlier intact one, instead of as the reader's traceback. Errors that mean something
        else (a checkpoint that does not fit the model, memory) keep their own message."""
        if self.start is None:
            return None
        try:
            return load(self.start)
        except Exception as error:
            if not _is_damage(error):
                raise
            raise damaged_checkpoint(self.start, f"loading it failed ({_reason(error)})") from error

    @property
    def metrics(self) -> MetricsLog:
        """``metrics.jsonl`` (and TensorBoard), opened at the first row. On a resume, what the
        updates after the checkpoint (which are redone) wrote is dropped then: their metrics
        lines, their TensorBoard events, their trajectory files."""
        if self._metrics is None:
            resume_after = self.update if self.resumed else None
            if resume_after is not None:
                for path in (self.dir / TRAJECTORIES).glob("update-*.*"):
                    number = re.fullmatch(r"update-(\d+)\.\w+", path.name)
                    if number and int(number.group(1)) > resume_after:
                        path.unlink()
            self._metrics = MetricsLog(self.dir, self._tensorboard, resume_after=resume_after)
        return self._metrics

    def trajectory_path(self, update: int) -> Path:
        """Where update ``update`` writes its samples (dropped if a resume redoes it)."""
        return self.dir / TRAJECTORIES / f"update-{update:06d}.jsonl"

    @property
    def update(self) -> int:
        """Updates done by the checkpoint this run continues from."""
        return int(self.state["update"])

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint_path(self, update: int) -> Path:
        return self.dir / "checkpoints" / f"update-{update:06d}"

    def latest(self) -> Path | None:
        return latest_checkpoint(self.dir)

    def begin_checkpoint(self, update: int) -> Path:
        """A fresh directory to write checkpoint ``update`` into; :meth:`commit` publishes it."""
        partial = self.checkpoint_path(update).with_name(self.checkpoint_path(update).name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)  # left by a run killed while saving
        partial.mkdir(parents=True)
        return partial

    def commit(self, partial: Path, update: int, state: dict[str, Any]) -> Path:
        """Publish a checkpoint: its files flushed to disk, its state, its final name, then the
        ``latest`` pointer."""
        _flush_tree(partial)
        atomic_write_text(partial / STATE, json.dumps({"update": update, **state}, indent=1))
        final = self.checkpoint_path(update)
        if final.exists():  # an older run reached this update before being resumed from earlier
            shutil.rmtree(final)
        partial.rename(final)
        _flush_tree(final.parent, files=False)
        atomic_write_text(self.dir / LATEST, final.name + "\n")
        done = sorted(p for p in final.parent.glob("update-*") if _number(p) is not None)
        for old in done[: -self.keep]:
            if old != final:  # renamed first: a kill while deleting leaves no half checkpoint to resume
                doomed = old.with_name(old.name + ".deleting")
                old.rename(doomed)
                shutil.rmtree(doomed, ignore_errors=True)
        for left in final.parent.glob("update-*.deleting"):  # by a run killed while pruning
            shutil.rmtree(left, ignore_errors=True)
        return final

    def is_saved(self, update: int) -> bool:
        return self.latest() == self.checkpoint_path(update)

    def train(self, step: Callable[[int], dict[str, Any]], save: Callable[[int, float], Any], *, until: int,
              every: int, max_minutes: float | None = None,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> None:
        """The update loop every trainer shares. ``step(n)`` plays and learns update ``n``
        (from the one after the checkpoint resumed) and returns its metrics, until ``until``
        updates or ``max_minutes`` of training time (summed over resumed runs) are spent. Each
        row is logged with its ``update`` and ``elapsed_min`` and handed to ``on_row``;
        ``save(n, elapsed_s)`` writes a checkpoint every ``every`` updates and after the last.
        The metrics close whatever happens: what was logged stays, the last checkpoint resumes."""
        update, elapsed_s = self.update, float(self.state["elapsed_s"])
        try:
            self.metrics  # opened now: a resume drops what the redone updates wrote before they write again
            while update < until and (max_minutes is None or elapsed_s < 60 * max_minutes):
                started = time.perf_counter()
                row = step(update + 1)
                elapsed_s += time.perf_counter() - started
                update += 1
                row = {"update": update, **row, "elapsed_min": elapsed_s / 60}
                self.metrics.log(row)
                if update % every == 0:
                    save(update, elapsed_s)
                if on_row is not None:
                    on_row(row)
            if not self.is_saved(update):
                save(update, elapsed_s)
        finally:
            self.close()

    def close(self) -> None:
        """Close the metrics and let another trainer open the run."""
        if self._metrics is not None:
            self._metrics.close()
        if self._lock is not None:
            self._lock.close()  # closing the file releases its lock
            self._lock = None

    def finish(self, title: str, plot: bool = True, **curve: Any) -> list[dict[str, Any]]:
        """Close the metrics and (``plot``) draw ``learning_curve.png``; ``curve`` goes to
        :func:`plot_learning_curve`. Returns every metrics row."""
        self.close()
        rows = read_metrics(self.dir / METRICS) if (self.dir / METRICS).is_file() else []
        if plot and rows:
            self.curve = plot_learning_curve(rows, self.dir / CURVE, title, **curve)
        return rows

    def outputs(self) -> str:
        """What this run wrote, for the command's last line: ``checkpoints, metrics.jsonl and
        learning_curve.png``, the curve only when :meth:`finish` drew it (``plot=false`` draws
        none, and a picture left by an earlier run would be stale)."""
        written = ["checkpoints", METRICS, *([CURVE] if self.curve is not None else [])]
        return f"{', '.join(written[:-1])} and {written[-1]}"


# -- metrics ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSettings(Config):
    """What every trainer's recipe says about its run: where it lives, its time budget, how
    often it checkpoints and what it draws. A recipe's config inherits these fields (a trainer
    overrides a default such as ``run_dir`` by declaring it again), adds its own to
    :attr:`RESUMABLE`, checks them with :meth:`run_problems` and opens its directory with
    :meth:`open_run`."""

    run_dir: str = "runs/run"
    seed: int = 0
    max_minutes: float | None = None
    """Stop after this much training time (summed over resumed runs) even if the budget of
    updates is not spent."""
    checkpoint_every: int = 10
    keep_checkpoints: int = 2
    tensorboard: bool = False
    plot: bool = True
    """Draw ``learning_curve.png`` when the run ends."""
    progress_every_s: float = 30.0
    """Where the output is not a terminal (a log file), print a line of progress this often."""

    RESUMABLE: ClassVar[tuple[str, ...]] = ("max_minutes", "checkpoint_every", "keep_checkpoints", "tensorboard",
                                            "plot", "progress_every_s")
    """Fields that may change when a run resumes; anything else must match the saved recipe."""
    BUDGET: ClassVar[str] = "updates"
    """The field that counts the run's updates (refused on resume when already reached)."""

    def run_problems(self) -> list[str]:
        """The problems of these fields, for the recipe's own check."""
        return (at_least(self, 1, "checkpoint_every", "keep_checkpoints")
                + above(self, 0, "max_minutes", "progress_every_s"))

    def open_run(self, resume: bool) -> Run:
        """The run directory of this recipe (see :class:`Run` for what it refuses)."""
        return Run(self.run_dir, self.to_dict(), resume=resume, resumable=self.RESUMABLE, keep=self.keep_checkpoints,
                   tensorboard=self.tensorboard, budget=self.BUDGET)


class MetricsLog:
    """``metrics.jsonl`` plus (optionally) TensorBoard events."""

    def __init__(self, run_dir: Path, tensorboard: bool, resume_after: int | None = None):
        self.path = run_dir / METRICS
        if resume_after is not None:
            self._truncate(resume_after)
        elif self.path.exists():
            self.path.unlink()
        self.file = self.path.open("a", encoding="utf-8")
        self.writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            # purge_step hides the events of updates that are being redone after a resume.
            self.writer = SummaryWriter(str(run_dir / "tensorboard"),
                                        purge_step=None if resume_after is None else resume_after + 1)

    def _truncate(self, last_update: int) -> None:
        """Keep the lines of updates up to the checkpoint being resumed: later ones are redone."""
        if not self.path.exists():
            return
        kept = [line for line in read_metrics_lines(self.path) if json.loads(line)["update"] <= last_update]
        atomic_write_text(self.path, "".join(kept))

    def log(self, row: dict[str, Any]) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in row.items():
                if key != "update" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, row["update"])
            self.writer.flush()

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def read_metrics_lines(path: Path) -> Iterator[str]:
    """Complete lines of a metrics file (a line cut by a kill is skipped)."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n") and line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError:
                    continue
                yield line


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` file, or of a run directory's."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    return [json.loads(line) for line in read_metrics_lines(path)]


def plot_learning_curve(metrics: list[dict[str, Any]], path: Path, title: str = "", keys: list[str] | None = None,
                        xlabel: str = "update", ylabel: str | None = None, prefix: str = "reward/") -> Path:
    """Metrics over updates as a PNG, raw and as a running mean: ``keys``, or every metric
    named ``prefix…`` (by default the reward of each role; when there is none, answer validity
    and the oracle's certainty)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if keys is None:
        keys = sorted({k for row in metrics for k in row if k.startswith(prefix)})
        ylabel = ylabel or "mean reward of trained moves"
        if not keys:  # preference learners: how often answers are well-formed, how sure the oracle is
            keys = [k for k in ("valid_format", "champion_p") if any(k in row for row in metrics)]
            ylabel = "share / probability"
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for key in keys:
        points = [(row["update"], row[key]) for row in metrics if key in row]
        if not points:
            continue
        xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points], dtype=float)
        window = max(1, len(ys) // 10)
        smooth = np.convolve(ys, np.ones(window) / window, mode="valid")
        line, = ax.plot(xs, ys, alpha=0.3)
        ax.plot(xs[window - 1:], smooth, color=line.get_color(), label=key.split("/", 1)[-1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel or "")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if keys:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
