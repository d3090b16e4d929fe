"""Settings shared by the whole test suite: wandb never goes online, few threads."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HYDRA_FULL_ERROR", "0")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (where train.py and conf/ live)."""
    return REPO_ROOT
