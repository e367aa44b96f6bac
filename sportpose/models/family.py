"""What a model family promises the training stages (SPEC §5–§6), as a :class:`typing.Protocol`.

The spec checks a stage against these class-level facts before anything starts, so that a field the model
cannot honour (``freeze_layers`` on a model without a backbone schedule, a task it does not have, a cached
frozen prefix it does not compute) is refused naming the key, not met inside a Ray worker. The stages then
call the methods below and nothing else of the model's own.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import torch


@runtime_checkable
class ModelFamily(Protocol):
    """A model family: one ``nn.Module`` class taking ``(config, num_joints)``.

    Class attributes (read by the spec without building the model):
        TASKS: the training tasks a stage may name (``train.stages.<name>.task``).
        CACHEABLE_TASKS: tasks whose frozen prefix gives the same outputs every epoch (``cache_frozen``).
        FREEZE_LAYERS: how many leading backbone stages ``freeze_layers`` may freeze; 0: the field is refused.
    """

    TASKS: ClassVar[tuple[str, ...]]
    CACHEABLE_TASKS: ClassVar[tuple[str, ...]]
    FREEZE_LAYERS: ClassVar[int]

    def input_names(self, task: str) -> tuple[str, ...]:
        """The batch columns ``forward(batch, task)`` reads."""
        ...

    def trainable_prefixes(self, task: str) -> tuple[str, ...]:
        """Module prefixes the task trains; everything else is frozen in that stage."""
        ...

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
             task: str) -> dict[str, torch.Tensor]:
        """Named losses of one batch; ``"loss"`` is the one optimised."""
        ...
