"""Where sparring's own files are: the Hydra configs and the shipped tiny model.

The configs live inside the installed package (a wheel carries them as ``sparring/configs``)
or at the repository root (a source checkout or editable install).
"""

from __future__ import annotations

from pathlib import Path

from sparring.errors import SparringError

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
