"""Pulling a published generator: checksum verification, the cache, and running it with ONNX Runtime."""

from __future__ import annotations

import boto3
import numpy as np
import onnxruntime as ort
import pytest
from model_helpers import manifest_fields

from ganlib import serving
from ganlib.serving import ChecksumError, OnnxGenerator, ProviderError, pull, slerp
from ganlib.store import LocalStore, ObjectNotFound, publish, sha256_file

pytestmark = pytest.mark.usefixtures("aws_env")  # fake AWS credentials, never the developer's


def _overwrite_raw(store, key: str, data: bytes) -> None:
    """Change a stored object behind the store's back: on disk, or straight through boto3."""
    if isinstance(store, LocalStore):
        (store.root / key).write_bytes(data)
    else:
        boto3.client("s3", endpoint_url=store.endpoint_url).put_object(
            Bucket=store.bucket, Key=f"{store.prefix}/{key}", Body=data
        )


def test_publish_then_pull_verifies_and_caches(store, onnx_models, cache_dir):
    info = onnx_models["cond"]
    res = publish(store, "digits", "v1", info.path, manifest_fields(info))
    pulled = pull(store.uri, "digits", cache_dir=cache_dir)
    assert (pulled.version, pulled.sha256, pulled.from_cache) == ("v1", res.sha256, False)
    assert pulled.path.is_relative_to(cache_dir)
    assert sha256_file(pulled.path) == (res.sha256, res.size)
    assert pulled.path.read_bytes() == info.path.read_bytes()

    again = pull(store.uri, "digits", "v1", cache_dir=cache_dir)
    assert again.from_cache and again.path == pulled.path

    images = OnnxGenerator(pulled.path, device="cpu").generate(6, seed=1)
    assert images.dtype == np.uint8 and images.shape == (6, 32, 32, 1)
    assert images.std() > 5  # real pictures, not a constant


def test_checksum_mismatch_is_detected_and_not_cached(store, onnx_models, cache_dir):
    info = onnx_models["cond"]
    publish(store, "digits", "v1", info.path, manifest_fields(info))
    data = bytearray(info.path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    _overwrite_raw(store, "digits/v1/generator.onnx", bytes(data))

    with pytest.raises(ChecksumError, match="sha256"):
        pull(store.uri, "digits", cache_dir=cache_dir)
    leftovers = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers  # neither the bad file nor a temp file stays

    _overwrite_raw(store, "digits/v1/generator.onnx", bytes(data[:-10]))  # truncated
    with pytest.raises(ChecksumError):
        pull(store.uri, "digits", cache_dir=cache_dir)


def test_corrupt_cache_entry_is_replaced(store, onnx_models, cache_dir):
    info = onnx_models["uncond"]
    publish(store, "digits", "v1", info.path, manifest_fields(info))
    first = pull(store.uri, "digits", cache_dir=cache_dir)
    first.path.write_bytes(b"garbage")
    second = pull(store.uri, "digits", cache_dir=cache_dir)
    assert not second.from_cache
    assert sha256_file(second.path)[0] == first.sha256

    # Cache and store both bad: the bad cached copy is dropped, not served.
    second.path.write_bytes(b"garbage")
    _overwrite_raw(store, "digits/v1/generator.onnx", b"also garbage")
    with pytest.raises(ChecksumError):
        pull(store.uri, "digits", cache_dir=cache_dir)
    assert not second.path.exists()


def test_pull_of_unknown_model_or_version(store, onnx_models, cache_dir):
    with pytest.raises(ObjectNotFound, match="no published version"):
        pull(store.uri, "nothing-here", cache_dir=cache_dir)
    info = onnx_models["uncond"]
    publish(store, "digits", "v1", info.path, manifest_fields(info))
    with pytest.raises(ObjectNotFound, match="digits/v7"):
        pull(store.uri, "digits", "v7", cache_dir=cache_dir)


def test_pull_uses_env_cache_dir(tmp_path, onnx_models, monkeypatch):
    store = LocalStore(tmp_path / "store")
    info = onnx_models["uncond"]
    publish(store, "digits", "v1", info.path, manifest_fields(info))
    monkeypatch.setenv("GAN_CACHE_DIR", str(tmp_path / "envcache"))
    assert pull(store.uri, "digits").path.is_relative_to(tmp_path / "envcache")


# --------------------------------------------------------------------------------------- OnnxGenerator
@pytest.fixture(scope="module")
def cond_gen(onnx_models):
    return OnnxGenerator(onnx_models["cond"].path, device="cpu")


def test_generator_reads_its_shape_from_the_model(cond_gen, onnx_models):
    assert (cond_gen.z_dim, cond_gen.num_classes, cond_gen.conditional) == (16, 10, True)
    assert cond_gen.provider == cond_gen.session.get_providers()[0] == "CPUExecutionProvider"
    uncond = OnnxGenerator(onnx_models["uncond"].path)
    assert (uncond.z_dim, uncond.num_classes, uncond.conditional) == (16, 0, False)
    with pytest.raises(ValueError, match="unconditional"):
        uncond.generate(2, class_id=1)


def test_generate_is_seeded_and_class_aware(cond_gen):
    a, b, c = cond_gen.generate(12, seed=3), cond_gen.generate(12, seed=3), cond_gen.generate(12, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # Default: balanced classes 0..9,0,1 -- the same as passing them explicitly.
    assert np.array_equal(a, cond_gen.generate(12, seed=3, class_id=np.arange(12) % 10))
    sevens = cond_gen.generate(12, seed=3, class_id=7)
    assert np.array_equal(sevens[7], a[7]) and not np.array_equal(sevens[0], a[0])
    with pytest.raises(ValueError, match="class_id"):
        cond_gen.generate(2, class_id=10)
    # Chunking does not change results (BatchNorm uses running stats in the export).
    small = OnnxGenerator(cond_gen.path, device="cpu", batch_size=5)
    assert np.array_equal(small.generate(12, seed=3), a)


def test_interpolate(cond_gen):
    z = cond_gen.latents(2, seed=0)
    path = cond_gen.interpolate(z[0], z[1], steps=5, class_id=3)
    assert path.shape == (5, 32, 32, 1) and path.dtype == np.uint8
    ends = serving.to_uint8(cond_gen.run(z, np.array([3, 3])))
    assert np.array_equal(path[0], ends[0]) and np.array_equal(path[-1], ends[1])
    linear = cond_gen.interpolate(z[0], z[1], steps=5, spherical=False, class_id=3)
    assert not np.array_equal(linear[2], path[2])


def test_slerp_keeps_the_norm_between_orthogonal_latents():
    z0, z1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    out = slerp(z0, z1, np.linspace(0, 1, 5))
    np.testing.assert_allclose(out[0], z0, atol=1e-12)
    np.testing.assert_allclose(out[-1], z1, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(slerp(z0, z0, np.array([0.5]))[0], z0)  # parallel: no division by zero


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="this machine has CUDA EP"
)
def test_demanding_the_gpu_without_one_fails_loudly(onnx_models):
    path = onnx_models["uncond"].path
    with pytest.raises(ProviderError, match="GPU"):
        OnnxGenerator(path, device="cuda")
    with pytest.raises(ProviderError, match="GPU"):
        OnnxGenerator(path, require_gpu=True)
    assert OnnxGenerator(path, device="auto").provider == "CPUExecutionProvider"


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_silent_cpu_fallback_is_caught(onnx_models, monkeypatch):
    # ONNX Runtime listed CUDA but the session fell back to CPU (e.g. missing cuDNN): the provider read
    # back from the session, not the wish list, decides.
    monkeypatch.setattr(
        serving.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    path = onnx_models["uncond"].path
    wish = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.InferenceSession(str(path), providers=wish).get_providers():
        pytest.skip("CUDA really works here")
    with pytest.raises(ProviderError, match=r"runs generator\.onnx on"):
        OnnxGenerator(path, require_gpu=True)
    gen = OnnxGenerator(path, device="auto")  # not demanded: falls back, and says so
    assert gen.provider == "CPUExecutionProvider"
