"""A loss that is not finite stops the stage at once, naming the epoch and the step, with the weights as they
were before that step; a model with non-finite weights or metric is never registered."""

import math

import pytest
import torch
from torch import nn

from sportpose.errors import TrainingError
from sportpose.registry.register import unregistrable
from sportpose.spec.experiment import StageSpec
from sportpose.training import loop


def blows_up_after(epochs_ok: int):
    """A loss that is finite for ``epochs_ok`` epochs and NaN from the second step of the next."""
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        loss = (model(batch["x"]) ** 2).mean()
        return {"loss": loss * math.nan if calls["n"] > epochs_ok * 3 + 1 else loss}
    return loss_fn


def test_a_nan_loss_stops_at_its_epoch_and_step_before_the_update():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    stage = StageSpec(epochs=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    progress = loop.Progress("loss", "min")
    batches = lambda split, epoch: [{"x": torch.randn(2, 4)} for _ in range(3)] if split == "train" else None  # noqa: E731
    epochs_seen = []
    weights = {}

    def on_epoch(metrics):
        epochs_seen.append(metrics["epoch"])
        weights.update({k: v.clone() for k, v in model.state_dict().items()})

    with pytest.raises(TrainingError, match=r"not finite \(nan\) at epoch 2, step 1 \(lr 0\.1\).*checkpoint of "
                                            r"epoch 1 is kept.*Lower optimizer\.lr"):
        loop.fit(model, stage, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 10), batches, blows_up_after(1),
                 progress, on_epoch)
    assert epochs_seen == [0] and progress.epoch == 1
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())  # the NaN step was not applied


def test_a_model_with_non_finite_weights_or_metric_is_not_registrable():
    good = {"w": torch.ones(3), "steps": torch.tensor(4)}
    assert unregistrable(good, 0.5) == ""
    assert "1 weight tensors are not finite (w)" in unregistrable({**good, "w": torch.tensor([1.0, math.inf])}, 0.5)
    assert "primary metric is not finite" in unregistrable(good, math.nan)
