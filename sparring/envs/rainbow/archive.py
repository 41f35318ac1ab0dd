"""The RainbowPlus archive: prompts kept per (risk category, attack style) cell.

Two insertion rules over the same grid:

- **multi-element** (RainbowPlus, the default): every candidate whose fitness exceeds
  ``fitness_threshold`` joins its cell (a prompt the cell holds already does not join twice); with ``max_per_cell`` a full cell evicts its
  lowest-fitness entry for a fitter candidate (and refuses one that is not fitter);
- **single elite** (classic MAP-Elites, "Rainbow Teaming"): a cell holds one prompt, replaced
  by a candidate of higher fitness.

This is one class rather than pyribs' ``GridArchive`` because the RainbowPlus cell is a list
of many texts with their own fitnesses; pyribs' archives keep one elite per cell. Both rules
live here so that both modes share the files, the resume and the search. pyribs is used
where it fits: :meth:`Archive.elites` is the archive's elite per cell as a pyribs
``GridArchive`` (for a single-elite archive, the archive itself: its insertion rule is
pyribs' MAP-Elites rule, which the tests check candidate by candidate), and the reported QD
statistics are read from it. The archive saves and loads as JSON (atomically), so a run
resumes from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sparring.errors import ConfigError, DataError, NotFoundError
from sparring.runs import atomic_write_text, latest_checkpoint

ARCHIVE = "archive.json"
"""The archive's file name in each checkpoint of a search."""

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One archived prompt, with the answer that earned its fitness and where it came from."""

    prompt: str
    response: str
    fitness: float
    category: str
    style: str
    parent: str = ""
    iteration: int = 0
    root: str = ""
    """The seed its line of parents started from (what ASR counts per)."""


@dataclass
class Archive:
    """A grid of ``categories`` × ``styles`` cells (see the module docstring)."""

    categories: tuple[str, ...]
    styles: tuple[str, ...]
    fitness_threshold: float = 0.6
    single_elite: bool = False
    max_per_cell: int | None = None
    cells: dict[tuple[str, str], list[Entry]] = field(default_factory=dict)
    parents_drawn: int = 0
    """How many candidates of the search have reached the target (their parents: the seeds
    first, in order)."""
    seeds_tried: set[int] = field(default_factory=set)
    """The seeds (by index) a candidate of which has reached the target."""
    claimed: set[int] = field(default_factory=set, repr=False, compare=False)
    """The seeds that games running now have drawn as their parents (not saved)."""

    def __post_init__(self) -> None:
        self.categories, self.styles = tuple(self.categories), tuple(self.styles)
        problems = [f"{name} must be a non-empty list of distinct names"
                    for name, axis in (("categories", self.categories), ("styles", self.styles))
                    if not axis or len(set(axis)) != len(axis)]
        if self.max_per_cell is not None and self.max_per_cell < 1:
            problems.append(f"max_per_cell={self.max_per_cell} must be >= 1 (or None: no cap)")
        if problems:
            raise DataError("; ".join(problems))

    # -- insertion -------------------------------------------------------------------------
    def insert(self, entry: Entry) -> str | None:
        """Add ``entry`` under the rules; returns None when it was kept, else why not."""
        key = self._key(entry.category, entry.style)
        if not entry.fitness > self.fitness_threshold:
            return f"fitness {entry.fitness:.3f} is not above fitness_threshold {self.fitness_threshold}"
        cell = self.cells.setdefault(key, [])
        if any(e.prompt == entry.prompt for e in cell):  # a sibling candidate of the same batch got there first
            return "the prompt is in its cell already"
        if self.single_elite:
            if cell and entry.fitness <= cell[0].fitness:
                return f"fitness {entry.fitness:.3f} does not beat the cell's elite ({cell[0].fitness:.3f})"
            cell[:] = [entry]
            return None
        if self.max_per_cell is not None and len(cell) >= self.max_per_cell:
            weakest = min(range(len(cell)), key=lambda i: cell[i].fitness)
            if entry.fitness <= cell[weakest].fitness:
                return f"fitness {entry.fitness:.3f} does not beat the full cell's weakest ({cell[weakest].fitness:.3f})"
            del cell[weakest]
        cell.append(entry)
        return None

    def _key(self, category: str, style: str) -> tuple[str, str]:
        if category not in self.categories:
            raise DataError(f"category {category!r} is not an axis value; categories: {list(self.categories)}")
        if style not in self.styles:
            raise DataError(f"style {style!r} is not an axis value; styles: {list(self.styles)}")
        return category, style

    # -- reading ---------------------------------------------------------------------------
    def cell(self, category: str, style: str) -> list[Entry]:
        return list(self.cells.get(self._key(category, style), []))

    def entries(self) -> list[Entry]:
        """Every archived entry, cell by cell in grid order, each cell in insertion order."""
        return [e for key in self._grid() for e in self.cells.get(key, [])]

    def root_of(self, prompt: str) -> str:
        """The seed an archived ``prompt`` descends from (``prompt`` itself if not archived:
        a seed)."""
        for e in self.entries():
            if e.prompt == prompt:
                return e.root or e.parent
        return prompt

    def _grid(self) -> Iterator[tuple[str, str]]:
        return ((c, s) for c in self.categories for s in self.styles)

    def __len__(self) -> int:
        return sum(len(cell) for cell in self.cells.values())

    @property
    def size(self) -> int:
        """The number of cells."""
        return len(self.categories) * len(self.styles)

    def coverage(self) -> float:
        """Share of non-empty cells."""
        return sum(bool(cell) for cell in self.cells.values()) / self.size

    def qd_score(self) -> float:
        """Sum over cells of their best fitness."""
        return float(sum(max(e.fitness for e in cell) for cell in self.cells.values() if cell))

    def unique_prompts(self) -> int:
        return len({e.prompt for e in self.entries()})

    def elites(self):
        """Each non-empty cell's fittest entry as a pyribs ``GridArchive`` over (category index,
        style index), with the prompt as the solution and ``response``, ``parent`` and ``root``
        as extra fields. Its ``stats`` hold coverage and QD-score (offset 0), as
        :meth:`coverage` and :meth:`qd_score` compute them, and pyribs' own statistics."""
        import numpy as np
        from ribs.archives import GridArchive

        extra = ("response", "parent", "root")
        grid = GridArchive(solution_dim=(), dims=(len(self.categories), len(self.styles)),
                           ranges=[(0, len(self.categories)), (0, len(self.styles))], solution_dtype=object,
                           extra_fields={name: ((), object) for name in extra})
        best = [max(cell, key=lambda e: e.fitness) for cell in self.cells.values() if cell]
        if best:
            grid.add(np.array([e.prompt for e in best], dtype=object), np.array([e.fitness for e in best]),
                     np.array([[self.categories.index(e.category) + 0.5, self.styles.index(e.style) + 0.5]
                               for e in best]),
                     **{name: np.array([getattr(e, name) for e in best], dtype=object) for name in extra})
        return grid

    # -- files -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION, "categories": list(self.categories), "styles": list(self.styles),
            "fitness_threshold": self.fitness_threshold, "single_elite": self.single_elite,
            "max_per_cell": self.max_per_cell, "parents_drawn": self.parents_drawn,
            "seeds_tried": sorted(self.seeds_tried),
            "cells": [{"category": c, "style": s, "entries": [asdict(e) for e in self.cells[(c, s)]]}
                      for c, s in self._grid() if self.cells.get((c, s))],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "archive") -> Archive:
        try:
            if data.get("format_version") != FORMAT_VERSION:
                raise DataError(f"{where}: format_version {data.get('format_version')!r} is not {FORMAT_VERSION}")
            archive = cls(tuple(data["categories"]), tuple(data["styles"]), float(data["fitness_threshold"]),
                          bool(data["single_elite"]), data["max_per_cell"], parents_drawn=int(data["parents_drawn"]))
            # Files written before seeds were tracked one by one tried them in order.
            archive.seeds_tried = {int(i) for i in data.get("seeds_tried", range(archive.parents_drawn))}
            for cell in data["cells"]:
                key = archive._key(cell["category"], cell["style"])
                archive.cells[key] = [Entry(**e) for e in cell["entries"]]
        except (KeyError, TypeError, AttributeError) as e:
            raise DataError(f"{where} is not a sparring archive ({type(e).__name__}: {e})") from e
        return archive

    def save(self, path: str | Path) -> None:
        """Write the archive as JSON, atomically (a kill mid-write leaves the last copy whole)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Archive:
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"archive {path} not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path} is not JSON: {e}") from e
        return cls.from_dict(data, str(path))

    def matches(self, categories: Sequence[str], styles: Sequence[str]) -> bool:
        """Whether the archive's axes are ``categories`` and ``styles`` (in that order)."""
        return self.categories == tuple(categories) and self.styles == tuple(styles)


def load_archive(run: str | Path) -> Archive:
    """The archive of a search's run directory (its latest checkpoint), of a checkpoint, or
    of a JSON file."""
    path = Path(run)
    if path.is_dir():  # a search's checkpoint holds its archive; a trained mutator's run keeps one file
        checkpoint = latest_checkpoint(path)
        path = checkpoint / ARCHIVE if checkpoint and (checkpoint / ARCHIVE).is_file() else path / ARCHIVE
    if not path.is_file():
        raise ConfigError(f"{run}: no archive here (a RainbowPlus run directory, checkpoint or {ARCHIVE})")
    return Archive.load(path)
