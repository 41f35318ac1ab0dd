"""Every error sparring raises for bad input, in one place.

Library code raises these; the ``sparring`` command prints each as one line and exits with
status 2, with no traceback. Each class also derives from the built-in exception a caller
would catch for it without knowing sparring (``KeyError`` for an unknown id, ``ValueError``
for a bad value, ``FileNotFoundError`` for a missing file), so ``except ValueError`` keeps
working. Messages name the bad value and the fix; where a value is one of a known set, they
suggest the closest valid ones (:func:`did_you_mean`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SparringError(Exception):
    """Base of every error sparring raises for bad input or a failed run."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(SparringError, ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


class UnknownGameError(SparringError, KeyError):
    """No game (or no such version of a game) is registered under that id."""


class UnknownPolicyError(SparringError, ValueError):
    """A policy spec names nothing that can be built: no registered name, no importable
    ``module:Class``, no model, checkpoint or run at that path."""


class NotFoundError(SparringError, FileNotFoundError):
    """A file or directory named in a config or on the command line is not there."""


class ModelNotFoundError(NotFoundError):
    """A model, checkpoint, run or adapter is not where the spec says."""


class DataError(SparringError, ValueError):
    """A data file (seed prompts, trajectories, demonstrations) holds a malformed row."""


class RunError(SparringError, ValueError):
    """A run directory cannot be used as asked: it already holds a run, holds nothing to
    resume, or was made with a different recipe."""


class PolicyError(SparringError, RuntimeError):
    """A policy raised while choosing a move (a user's agent that fails, not bad input to
    sparring): the game it played in stops, naming the seat, the policy and the exception."""


class StoreError(SparringError):
    """A tournament file is missing, corrupt, foreign or of another version."""


class JudgeError(SparringError, ValueError):
    """A judge returned something that is not a valid verdict."""


class PoolError(SparringError):
    """Base class of the inference pool's errors."""


class InvalidRequestError(PoolError, ValueError):
    """A request the pool cannot serve (bad sampling params, unknown policy, bad prompt).
    Only that request fails; the pool keeps serving the others."""


class BackendError(PoolError):
    """The backend failed while serving a request (a crashed worker, a server error)."""


class PoolClosedError(PoolError):
    """The pool was closed before the request was served."""


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the choice closest to ``value``, or an empty string."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""
