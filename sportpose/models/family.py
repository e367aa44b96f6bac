"""What a model family promises the training stages (SPEC §5–§6), as a :class:`typing.Protocol`.

The spec checks a stage against these class-level facts before anything starts, so that a field the model
cannot honour (``freeze_layers`` on a model without a backbone schedule, a task it does not have, a cached
frozen prefix it does not compute) is refused naming the key, not met inside a Ray worker. The stages then
call the methods below and nothing else of the model's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class TaskMetric:
    """The validation metric of a task: it picks a stage's best checkpoint and is logged every epoch (SPEC §6).

    ``name`` is the key in an epoch's metrics. A *counted* metric (``val_pckh``) is a ratio of counts the model
    returns per batch from ``metric_counts`` (pooled over batches and workers, then divided); any other is one
    of the validation losses (``val_mpjpe_mm``, ``val_loss``).
    """

    name: str
    mode: Literal["min", "max"]
    counted: bool = False  # name is val_<key of metric_counts(...)>, not a loss


# PCKh@0.5 of the 2D heatmap tasks: a ratio of the counts of heatmaps.pckh_counts, in percent
PCKH = TaskMetric("val_pckh", "max", counted=True)


@runtime_checkable
class ModelFamily(Protocol):
    """A model family: one ``nn.Module`` class taking ``(config, num_joints)``.

    Class attributes (read by the spec without building the model):
        TASKS: the training tasks a stage may name (``train.stages.<name>.task``).
        CACHEABLE_TASKS: tasks whose frozen prefix gives the same outputs every epoch (``cache_frozen``).
        FREEZE_LAYERS: how many leading backbone stages ``freeze_layers`` may freeze; 0: the field is refused.
        UNREAD_FIELDS (optional): ``{task: config fields a stage of that task does not read}``; a resumed run
            whose only changes are such fields keeps that task's finished stages (``pipelines.resume``).

    Class methods (also read by the spec): ``task_metric(task)`` the :class:`TaskMetric` a stage of the task
    is judged by (a stage's ``metric: null``), ``loss_names(config, task)`` the keys ``loss`` returns (the other
    names a stage's ``metric`` may pick, ``val_``-prefixed or not).
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

    def metric_counts(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                      task: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{name: (hits, total)}`` of one validation batch for the counted metrics of ``task`` ({} if none)."""
        ...
