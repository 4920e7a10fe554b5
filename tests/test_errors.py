"""One root for the errors a user can fix, each with the exit status the docs give it (errors.EXIT_STATUSES)."""

from __future__ import annotations

import pytest

import icldsl
from icldsl.artifact import ArtifactError
from icldsl.cli.console import Failure
from icldsl.datasets import DataError
from icldsl.language.diagnostics import CheckError
from icldsl.lm.base import LMConfigError
from icldsl.lm.cache import CacheError
from icldsl.runtime.program import InvalidInput, PredictionError
from icldsl.runtime.tools import ToolError
from icldsl.training.session import SettingError
from icldsl.user_code import UserCodeError


@pytest.mark.parametrize("cls", [ArtifactError, CheckError, DataError, LMConfigError, CacheError, InvalidInput,
                                 PredictionError, ToolError, SettingError, UserCodeError, Failure])
def test_every_user_facing_error_derives_from_the_root_and_exits_1(cls: type) -> None:
    assert issubclass(cls, icldsl.Error)
    assert cls.exit_code == 1
