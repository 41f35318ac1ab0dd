"""A tournament's results: one SQLite file (WAL mode) per tournament directory.

Tables: ``meta`` (format marker, the tournament config), ``agents``, ``matches`` (one row per
finished match, written once in its own transaction when the match ends: seats, rewards,
reward terms, status, forfeit reason, transcript) and ``ratings`` (snapshots). A killed
tournament loses only the matches that were being played; resuming plays exactly those.
An existing file that is not a sparring tournament is never written to.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparring.errors import StoreError
from sparring.runs import as_opened

FORMAT = "sparring-arena"
VERSION = 1
DB_NAME = "tournament.sqlite"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE agents (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
CREATE TABLE matches (
    key TEXT PRIMARY KEY, idx INTEGER NOT NULL, round INTEGER NOT NULL, seed INTEGER NOT NULL,
    seats TEXT NOT NULL, status TEXT NOT NULL, rewards TEXT, reward_terms TEXT,
    forfeit_by TEXT, reason TEXT, transcript TEXT, seconds REAL, finished_at REAL NOT NULL
);
CREATE TABLE ratings (
    snapshot INTEGER NOT NULL, system TEXT NOT NULL, agent TEXT NOT NULL, rating REAL NOT NULL,
    lo REAL, hi REAL, matches INTEGER NOT NULL, created REAL NOT NULL
);
"""


@dataclass
class MatchRecord:
    key: str
    index: int
    round: int
    seed: int
    seats: dict[str, str]
    status: str
    """``done`` or ``forfeit``."""
    rewards: dict[str, float] | None = None
    """Seat → total reward (``None`` for a forfeit)."""
    reward_terms: dict[str, dict[str, float]] = field(default_factory=dict)
    forfeit_by: str | None = None
    """The agent that forfeited."""
    reason: str | None = None
    transcript: str = ""
    seconds: float = 0.0

    def agent_reward(self, agent: str) -> float | None:
        if self.rewards is None:
            return None
        values = [self.rewards[seat] for seat, a in self.seats.items() if a == agent]
        return sum(values) / len(values) if values else None


class Store:
    def __init__(self, path: Path, connection: sqlite3.Connection):
        self.path = path
        self.db = connection

    @classmethod
    def create(cls, directory: Path, config: dict[str, Any], agents: dict[str, Any]) -> Store:
        path = directory / DB_NAME
        if path.exists():
            raise StoreError(f"{path} already exists; resume that tournament or choose another name")
        directory.mkdir(parents=True, exist_ok=True)
        # Built whole under a name of its own and renamed into place: a kill while creating
        # leaves no half-made tournament that could neither be resumed nor created again.
        fd, name = tempfile.mkstemp(dir=directory, prefix=DB_NAME + ".", suffix=".partial")
        os.close(fd)
        partial = Path(name)
        as_opened(partial)
        try:
            db = sqlite3.connect(partial)
            try:
                db.executescript(_SCHEMA)
                with db:
                    db.executemany("INSERT INTO meta VALUES (?, ?)", [
                        ("format", FORMAT), ("version", str(VERSION)), ("config", json.dumps(config)),
                        ("created", str(time.time()))])
                    db.executemany("INSERT INTO agents VALUES (?, ?)", [(n, json.dumps(s)) for n, s in agents.items()])
            finally:
                db.close()
            with partial.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        return cls(path, db)

    @classmethod
    def open(cls, directory: Path) -> Store:
        path = directory / DB_NAME
        if not path.is_file():
            raise StoreError(f"no tournament at {directory} ({DB_NAME} missing)")
        try:
            db = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{path} is not a readable sparring tournament ({e}); it was left untouched") from e
        if meta.get("format") != FORMAT:
            db.close()
            raise StoreError(f"{path} is an SQLite file of something else (no sparring-arena marker); "
                             "it was left untouched")
        if meta.get("version") != str(VERSION):
            db.close()
            raise StoreError(f"{path} has format version {meta.get('version')}; this sparring reads {VERSION}")
        db.execute("PRAGMA journal_mode=WAL")
        return cls(path, db)

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.db.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])

    def add(self, record: MatchRecord) -> None:
        """Write a finished match (in one transaction). A match already stored is an error:
        every scheduled match is played once."""
        with self.db:
            self.db.execute(
                "INSERT INTO matches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.key, record.index, record.round, record.seed, json.dumps(record.seats), record.status,
                 None if record.rewards is None else json.dumps(record.rewards), json.dumps(record.reward_terms),
                 record.forfeit_by, record.reason, record.transcript, record.seconds, time.time()))

    def done_keys(self) -> set[str]:
        return {k for (k,) in self.db.execute("SELECT key FROM matches")}

    def matches(self) -> list[MatchRecord]:
        """Every stored match, in schedule order."""
        rows = self.db.execute(
            "SELECT key, idx, round, seed, seats, status, rewards, reward_terms, forfeit_by, reason, transcript, "
            "seconds FROM matches ORDER BY idx").fetchall()
        return [MatchRecord(key, idx, rnd, seed, json.loads(seats), status,
                            None if rewards is None else json.loads(rewards), json.loads(terms or "{}"),
                            forfeit_by, reason, transcript or "", seconds or 0.0)
                for key, idx, rnd, seed, seats, status, rewards, terms, forfeit_by, reason, transcript, seconds in rows]

    def save_ratings(self, rows: list[tuple[str, str, float, float | None, float | None, int]]) -> None:
        """A snapshot of (system, agent, rating, lo, hi, matches) rows."""
        with self.db:
            snapshot = (self.db.execute("SELECT COALESCE(MAX(snapshot), 0) FROM ratings").fetchone()[0]) + 1
            now = time.time()
            self.db.executemany("INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                [(snapshot, *row, now) for row in rows])

    def close(self) -> None:
        self.db.close()
