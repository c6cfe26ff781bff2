"""A tiny DCGAN trained once per session on digits, with held-out digits it never saw."""

from __future__ import annotations

import pytest
from latent_helpers import train_tiny_dcgan


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """Checkpoint of an unconditional 16 px DCGAN trained 200 steps (~10 s of CPU)."""
    return train_tiny_dcgan(tmp_path_factory.mktemp("tiny-dcgan"))
