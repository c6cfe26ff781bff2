"""Session fixtures of the ganlib tests: small trained DCGANs and the exported generators, built once."""

from __future__ import annotations

import pytest
from ganlib_helpers import digits_split, train_tiny_dcgan
from latent_helpers import N_VAL, digits_at

from ganlib.data.shards import Split


@pytest.fixture(scope="session")
def trained_dcgan(tmp_path_factory):
    """(checkpoint path, training split) of a 16px conditional DCGAN trained for 120 steps of 32 (~20 s of
    CPU), with its discriminator: what the dissection tests dissect."""
    split = digits_split(16)
    return train_tiny_dcgan(tmp_path_factory.mktemp("dissect-train"), split, steps=120, batch_size=32), split


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """Checkpoint of an unconditional 16 px DCGAN trained 200 steps (~10 s of CPU) on all digits but the
    held-out ones (``latent_helpers.N_VAL``)."""
    images, labels, perm = digits_at()
    held_in = perm[:-N_VAL]
    split = Split(images=images[held_in], labels=labels[held_in], meta=digits_split(16).meta)
    out = tmp_path_factory.mktemp("tiny-dcgan")
    return train_tiny_dcgan(out, split, steps=200, batch_size=64, conditional=False)


@pytest.fixture(scope="session", params=["cond", "uncond"], ids=["conditional", "unconditional"])
def exported(request, exports):
    """(generator, ExportInfo) for a conditional and an unconditional DCGAN."""
    return exports[request.param]
