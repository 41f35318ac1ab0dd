"""Where sparring's own files are: the Hydra configs and the shipped tiny model.

The configs live inside the installed package (a wheel carries them as ``sparring/configs``)
or at the repository root (a source checkout or editable install).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from sparring.errors import DataError, SparringError

_PACKAGE = Path(__file__).resolve().parent

#: The committed tiny model directory (config, weights, tokenizer, model card): see
#: ``sparring/models/tiny/README.md``; ``python -m sparring.models.pretrain`` retrains it.
TINY_MODEL: Path = _PACKAGE / "models" / "tiny"


def config_dir() -> Path:
    for candidate in (_PACKAGE / "configs", _PACKAGE.parent / "configs"):
        if candidate.is_dir():
            return candidate
    raise SparringError(
        f"sparring's configs were not found next to {_PACKAGE}; reinstall the package "
        "(pip install sparring) or run from a source checkout"
    )


@contextlib.contextmanager
def text_file(path: str | Path, newline: str | None = None) -> Iterator[IO[str]]:
    """A user's data file opened as UTF-8 text (a byte-order mark, as spreadsheet programs
    write, is skipped): one that is not UTF-8 (a binary file, another encoding) is a
    :class:`~sparring.errors.DataError` naming the file, wherever the reader stops on it."""
    try:
        with open(path, encoding="utf-8-sig", newline=newline) as f:
            yield f
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.object[error.start:error.start + 1]!r} at "
                        f"offset {error.start} of a read); save it as UTF-8") from None
