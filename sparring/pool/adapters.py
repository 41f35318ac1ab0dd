"""LoRA adapters (``peft``) served next to their base model in one batch.

Several policies can share one base model as adapters: a league of opponents or a learner's
adapter beside the frozen reference cost a few hundred kilobytes each instead of a full copy.
Rows of one batch pick their adapter through peft's ``adapter_names`` (``__base__`` for the
base model), so the base and all its adapters decode together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sparring.errors import InvalidRequestError, ModelNotFoundError
from sparring.pool.transformers_backend import LoadedModel, check_state_fits


def attach_adapter(loaded: LoadedModel, name: str, adapter: str | Path | Any) -> None:
    """Add adapter ``name`` to ``loaded.model``: a saved peft adapter or a ``LoraConfig``."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if isinstance(adapter, (str, Path)):
        path = Path(adapter)
        if not (path / "adapter_config.json").is_file():
            raise ModelNotFoundError(f"no peft adapter at {path} (adapter_config.json missing)")
        if isinstance(loaded.model, PeftModel):
            loaded.model.load_adapter(str(path), adapter_name=name)
        else:
            loaded.model = PeftModel.from_pretrained(loaded.model, str(path), adapter_name=name)
    elif isinstance(adapter, LoraConfig):
        if isinstance(loaded.model, PeftModel):
            loaded.model.add_adapter(name, adapter)
        else:
            loaded.model = get_peft_model(loaded.model, adapter, adapter_name=name)
    else:
        raise InvalidRequestError(f"adapter must be a saved adapter directory or a peft.LoraConfig, got {type(adapter).__name__}")
    loaded.model.to(loaded.device).eval()
    loaded.__dict__.pop("cache_arg", None)  # the forward signature changed


def adapter_state(loaded: LoadedModel, name: str) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(loaded.model, adapter_name=name)


def check_adapter_fits(loaded: LoadedModel, name: str, state: dict[str, torch.Tensor]) -> None:
    current = adapter_state(loaded, name)
    check_state_fits(f"adapter {name!r} (a peft adapter state dict)", current, current, state)


def load_adapter_state(loaded: LoadedModel, name: str, state: dict[str, torch.Tensor]) -> None:
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(loaded.model, state, adapter_name=name)
