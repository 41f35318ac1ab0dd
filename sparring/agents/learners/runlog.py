"""What a training run leaves on disk, written so that a kill at any moment loses nothing:

- ``config.json``: the run's configuration;
- ``metrics.jsonl``: one line per update (flushed as written);
- ``checkpoints/update-NNNNNN/``: ``model/`` (loads with ``from_pretrained``), optimizer and
  trainer state. A checkpoint is built under a ``.partial`` name and renamed into place, and
  ``latest`` (the newest complete one) is replaced atomically;
- ``tensorboard/``: the metrics as TensorBoard events;
- ``learning_curve.png``: reward per role over updates.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LATEST = "latest"


def atomic_write_text(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    partial.replace(path)


class Checkpoints:
    def __init__(self, run_dir: Path, keep: int = 2):
        self.root = run_dir / "checkpoints"
        self.pointer = run_dir / LATEST
        self.keep = keep

    def path(self, update: int) -> Path:
        return self.root / f"update-{update:06d}"

    def latest(self) -> Path | None:
        if not self.pointer.is_file():
            return None
        path = self.root / self.pointer.read_text(encoding="utf-8").strip()
        if not (path / "trainer_state.json").is_file():
            raise FileNotFoundError(f"{self.pointer} names {path}, which is not a complete checkpoint")
        return path

    def begin(self, update: int) -> Path:
        """A fresh directory to write checkpoint ``update`` into; :meth:`commit` publishes it."""
        partial = self.path(update).with_name(self.path(update).name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)  # left by a run killed while saving
        partial.mkdir(parents=True)
        return partial

    def commit(self, partial: Path, update: int, state: dict[str, Any]) -> Path:
        atomic_write_text(partial / "trainer_state.json", json.dumps(state, indent=1))
        final = self.path(update)
        if final.exists():  # an older run reached this update before being resumed from earlier
            shutil.rmtree(final)
        partial.rename(final)
        atomic_write_text(self.pointer, final.name + "\n")
        self._prune(final)
        return final

    def _prune(self, newest: Path) -> None:
        done = sorted(p for p in self.root.glob("update-*") if not p.name.endswith(".partial"))
        for old in done[: -self.keep]:
            if old != newest:
                shutil.rmtree(old, ignore_errors=True)


class MetricsLog:
    """``metrics.jsonl`` plus (optionally) TensorBoard events."""

    def __init__(self, run_dir: Path, tensorboard: bool, resume_after: int | None = None):
        self.path = run_dir / "metrics.jsonl"
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
        self.file.close()
        if self.writer is not None:
            self.writer.close()


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
    return [json.loads(line) for line in read_metrics_lines(Path(path))]


def plot_learning_curve(metrics: list[dict[str, Any]], path: Path, title: str = "",
                        keys: list[str] | None = None, xlabel: str = "update", ylabel: str | None = None) -> Path:
    """Metrics over updates as a PNG, raw and as a running mean: by default the reward of
    each role (or, for preference learners, answer validity and the oracle's certainty)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if keys is None:
        keys = sorted({k for row in metrics for k in row if k.startswith("reward/")})
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
