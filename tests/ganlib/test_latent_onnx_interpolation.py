"""The ONNX consumer's interpolate() walks the same path as ganlib.latent and gets the same images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from latent_helpers import random_generator
from model_helpers import EXPORT_METADATA

from ganlib.export import check_parity, export_onnx
from ganlib.latent import interpolate, interpolation_path
from ganlib.serving import OnnxGenerator, to_uint8
from ganlib.serving import interpolation_path as consumer_path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    g = random_generator("dcgan", num_classes=10, seed=5)
    info = export_onnx(g, tmp_path_factory.mktemp("onnx") / "generator.onnx", metadata=EXPORT_METADATA)
    return g, OnnxGenerator(info.path, device="cpu"), check_parity(g, info.path)


@pytest.mark.parametrize("spherical", [True, False], ids=["slerp", "lerp"])
def test_same_path_same_images(exported, spherical):
    g, onnx_g, parity = exported
    assert parity.ok and parity.max_abs_err <= 1e-4
    z = onnx_g.latents(2, seed=11)
    zs = consumer_path(z[0], z[1], 9, spherical)  # the consumer's own path, in numpy
    theirs = onnx_g.run(zs, 3)  # raw float images from ONNX Runtime
    ours = interpolate(g, torch.from_numpy(z[0]), torch.from_numpy(z[1]), 9, spherical, class_id=3).numpy()
    err = float(np.abs(theirs - ours).max())
    print(f"interpolation parity ({'slerp' if spherical else 'lerp'}): max abs err {err:.2e}")
    assert err <= 1e-4
    assert np.abs(ours[1:] - ours[:-1]).max() > 1e-2  # a real path, not nine copies of one image

    # The uint8 API is the same images, rounded: at most one grey level apart where rounding flips.
    pictures = onnx_g.interpolate(z[0], z[1], 9, spherical=spherical, class_id=3)
    assert np.array_equal(pictures, to_uint8(theirs))
    assert np.abs(pictures.astype(int) - to_uint8(ours).astype(int)).max() <= 1
    torch_path = interpolation_path(torch.from_numpy(z[0]), torch.from_numpy(z[1]), 9, spherical)
    np.testing.assert_allclose(zs, torch_path.numpy(), rtol=0, atol=1e-6)
