"""Helpers shared by the serving tests (a unique module name: tests/ dirs are not packages)."""

from __future__ import annotations

from model_helpers import EXPORT_METADATA as MODEL_METADATA  # noqa: F401  (re-exported to the tests)
from model_helpers import spread_generator


def make_generator(num_classes: int, seed: int = 0):
    """A 32px DCGAN with spread weights and BatchNorm statistics (see model_helpers)."""
    return spread_generator(num_classes, seed)


def manifest_fields(info, **overrides):
    fields = {
        **info.manifest_fields(),
        "fid": {"value": 12.5, "backbone": "domain:d474"},
        "data_hash": "d474",
        "config": {"model": {"family": "dcgan"}, "train": {"steps": 10}},
        "git_commit": "0" * 40,
        "extra": {"parity_max_abs_err": 1e-7},
    }
    fields.update(overrides)
    return fields
