"""The models: backbones, the two papers' networks, losses and the skeleton definitions.

Models know nothing of Ray or MLflow. Each family takes its config dataclass (defined at the top of its
file) and the number of joints, consumes a dict of tensors, and returns a dict of tensors; ``model.loss``
turns outputs and a batch into named losses, ``"loss"`` being the one optimised.
"""

from __future__ import annotations

from torch import nn

from sportpose.models.multistream import MultiStream
from sportpose.models.simplebaseline import SimpleBaseline
from sportpose.models.stsp import STSPNet

MODELS: dict[str, type[nn.Module]] = {"simplebaseline": SimpleBaseline, "multistream": MultiStream, "stsp": STSPNet}


def build_model(config, num_joints: int) -> nn.Module:
    """The model named by ``config.kind``."""
    return MODELS[config.kind](config, num_joints)
