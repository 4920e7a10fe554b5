"""Every reward and optimizer a train block may name."""

from __future__ import annotations

from typing import Mapping

from ..options import Function
from . import nearest, omega, optimizers, reflective, rewards

REWARDS: Mapping[str, Function] = rewards.REWARDS
OPTIMIZERS: Mapping[str, Function] = {**optimizers.OPTIMIZERS, **nearest.OPTIMIZERS, **omega.OPTIMIZERS,
                                     **reflective.OPTIMIZERS}
