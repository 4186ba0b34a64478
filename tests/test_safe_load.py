"""A pickle that names a Python global nasvit does not allow is refused in nasvit's words: never with torch's advice
to load it with ``weights_only=False``, which would run the file's code."""

from __future__ import annotations

import pytest
import torch

from nasvit.recipes.teacher import _read_state
from nasvit.runtime import checkpoint
from nasvit.runtime.checkpoint import CheckpointError


class Gadget:
    """A class of the file's own: unpickling it would import this module and build one."""


def a_pickle_with_a_foreign_global(path):
    torch.save({"format": checkpoint.FORMAT, "weights": Gadget()}, path)
    return path


def test_a_checkpoint_naming_a_foreign_global_is_refused_without_the_unsafe_advice(tmp_path):
    path = a_pickle_with_a_foreign_global(tmp_path / "step.pt")
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    message = str(info.value)
    assert "Gadget, which nasvit does not allow" in message and "nasvit will not load it" in message
    assert "weights_only" not in message and "can still be loaded" not in message and "\n" not in message


def test_a_teacher_file_naming_a_foreign_global_is_refused_alike(tmp_path):
    path = a_pickle_with_a_foreign_global(tmp_path / "teacher.pt")
    with pytest.raises(Exception, match="nasvit will not load it") as info:
        _read_state(path, "teacher")
    assert "weights_only" not in str(info.value)
