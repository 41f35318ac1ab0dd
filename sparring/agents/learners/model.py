"""The learner's side of a model: trainable weights, the frozen reference, the optimizer, and
turning samples into padded batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from sparring.agents.learners.config import LoraSettings
from sparring.agents.learners.losses import token_logprobs
from sparring.agents.trajectories import Sample
from sparring.errors import ConfigError, RunError
from sparring.runs import ModelSource, read_safetensors, resolve_model


@dataclass
class Batch:
    """Samples right-padded into tensors. Per-token tensors are aligned with the predicted
    token (``T - 1`` columns): ``mask[b, t]`` is the loss mask of ``input_ids[b, t + 1]``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def collate(cls, samples: Sequence[Sample], pad_id: int) -> Batch:
        return cls.from_pairs([(s.prompt_ids, s.completion_ids) for s in samples], pad_id)

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int) -> Batch:
        """(prompt ids, completion ids) pairs; the loss mask covers the completions."""
        width = max(len(p) + len(c) for p, c in pairs)
        ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(pairs), width), dtype=torch.long)
        loss_mask = torch.zeros((len(pairs), width), dtype=torch.float32)
        for row, (prompt, completion) in enumerate(pairs):
            n = len(prompt) + len(completion)
            ids[row, :n] = torch.tensor([*prompt, *completion])
            attention[row, :n] = 1
            loss_mask[row, len(prompt):n] = 1.0
        return cls(ids, attention, loss_mask[:, 1:])

    def rows(self, start: int, stop: int) -> Batch:
        """Rows ``start:stop``, cut to their own longest sequence."""
        attention = self.attention_mask[start:stop]
        width = int(attention.sum(-1).max())
        return Batch(self.input_ids[start:stop, :width], attention[:, :width], self.mask[start:stop, : width - 1])


def sequence_logprobs(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Each predicted token's logprob under ``model`` (``[B, T - 1]``). Position ids come from
    the attention mask, as in the pool, so the values match generation-time logprobs."""
    positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=positions).logits
    return token_logprobs(logits, batch.input_ids)


class LearnerModel:
    """Trainable weights (all of them, or a LoRA adapter on a frozen base), the frozen
    reference (a copy, or the base with the adapter switched off), and the optimizer.

    ``adapters`` (with ``lora``): several named LoRA adapters on the one base, e.g. one per
    role; :meth:`use` picks the one that the next forward passes run through, and each
    adapter's weights and checkpoint are its own."""

    def __init__(self, source: str | Path | ModelSource, lr: float, lora: LoraSettings | None = None,
                 device: str = "cpu", adapters: tuple[str, ...] = ()):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        found = source if isinstance(source, ModelSource) else resolve_model(source)
        self.source = found.location
        self.device = torch.device(device)
        self.tokenizer = found.load(AutoTokenizer)
        model = found.load(AutoModelForCausalLM, dtype=torch.float32)
        self.lora = lora
        if adapters and lora is None:
            raise ConfigError(f"adapters {list(adapters)} need a LoRA learner (learner.lora)")
        self.adapters = tuple(adapters)
        if lora is not None:
            from peft import LoraConfig, get_peft_model

            self.lora_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                          target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
            names = adapters or ("default",)
            try:
                model = get_peft_model(model, self.lora_config, adapter_name=names[0])
            except ValueError as error:  # peft's: no module of the model matches target_modules
                raise ConfigError(f"learner.lora.target_modules={list(lora.target_modules)}: {error}") from None
            for name in names[1:]:
                model.add_adapter(name, self.lora_config)
            self.reference = None
        else:
            self.reference = found.load(AutoModelForCausalLM, dtype=torch.float32)
            self.reference.to(self.device).eval().requires_grad_(False)
        self.model = model.to(self.device)
        self.model.train()
        params = ([p for n, p in self.model.named_parameters() if "lora_" in n] if self.adapters
                  else [p for p in self.model.parameters() if p.requires_grad])
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id

    def use(self, adapter: str | None) -> None:
        """Run the next forward passes through ``adapter`` (one of ``adapters``; ``None``: the
        learner has one set of weights)."""
        if adapter is None:
            return
        if adapter not in self.adapters:
            raise ConfigError(f"no adapter {adapter!r}; the learner has {list(self.adapters)}")
        self.model.set_adapter(adapter)

    def trained_parameters(self, adapter: str | None = None) -> list[torch.nn.Parameter]:
        """The parameters with a gradient that ``adapter`` owns (``None``: all of them)."""
        params = [(n, p) for n, p in self.model.named_parameters() if p.grad is not None]
        return [p for n, p in params if adapter is None or f".{adapter}." in n]

    def logprobs(self, batch: Batch) -> torch.Tensor:
        """Each completion token's logprob under the learner, on the batch's own device (the
        losses are computed beside the batch's masks and buffers; gradients flow back to the
        model on its device)."""
        return sequence_logprobs(self.model, self._on_device(batch)).to(batch.mask.device)

    @torch.no_grad()
    def reference_logprobs(self, batch: Batch) -> torch.Tensor:
        """The same under the frozen reference (the base without the adapter, for LoRA)."""
        on_device = self._on_device(batch)
        if self.reference is not None:
            return sequence_logprobs(self.reference, on_device).to(batch.mask.device)
        with self.model.disable_adapter():
            return sequence_logprobs(self.model, on_device).to(batch.mask.device)

    def _on_device(self, batch: Batch) -> Batch:
        if self.device.type == "cpu":
            return batch
        return Batch(batch.input_ids.to(self.device), batch.attention_mask.to(self.device), batch.mask.to(self.device))

    def weights(self, adapter: str | None = None) -> dict[str, torch.Tensor]:
        """What the pool needs to serve the current policy (or ``adapter``): the adapter's
        weights or every weight."""
        if self.lora is not None:
            from peft import get_peft_model_state_dict

            return get_peft_model_state_dict(self.model, adapter_name=adapter or self.model.active_adapter)
        return self.model.state_dict()

    def save(self, directory: Path) -> None:
        """A directory that ``from_pretrained`` loads: the model (or the peft adapter) and the
        tokenizer."""
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))

    def load(self, directory: Path) -> None:
        """Load a checkpoint's weights (the adapter's, for a LoRA learner)."""
        if self.lora is not None:
            from peft import set_peft_model_state_dict

            for name in self.adapters or ("default",):  # peft saves a named adapter in its own folder
                folder = directory if name == "default" else directory / name
                set_peft_model_state_dict(self.model, read_safetensors(folder / "adapter_model.safetensors"),
                                          adapter_name=name)
            return
        state = read_safetensors(directory)
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        tied = {k for k in missing if "lm_head" in k}
        if unexpected or set(missing) - tied:
            raise RunError(f"checkpoint {directory} does not fit the model: missing {sorted(set(missing) - tied)}, "
                             f"unexpected {sorted(unexpected)}")
        self.model.tie_weights()
