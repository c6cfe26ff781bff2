"""One tiny trained DCGAN (with its discriminator) shared by the dissection tests of a session."""

from __future__ import annotations

import pytest
from dissect_helpers import train_tiny_dcgan


@pytest.fixture(scope="session")
def trained_dcgan(tmp_path_factory):
    """(checkpoint path, training split) of a 16px conditional DCGAN trained for 120 steps of 32 (~20 s of CPU)."""
    return train_tiny_dcgan(tmp_path_factory.mktemp("dissect-train"))
