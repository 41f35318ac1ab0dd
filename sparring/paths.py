"""Where the Hydra configs are: inside the installed package (a wheel carries them as
``sparring/configs``) or at the repository root (a source checkout or editable install)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def config_dir() -> Path:
    for candidate in (_PACKAGE / "configs", _PACKAGE.parent / "configs"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"sparring's configs were not found next to {_PACKAGE}; reinstall the package "
        "(pip install sparring) or run from a source checkout"
    )
