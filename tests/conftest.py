from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fuzzyemo import default_rules_dir


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A private, editable copy of the shipped rule base."""
    dest = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), dest)
    return dest
