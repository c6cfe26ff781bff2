"""model.resolution: a config made for one image size refuses data of another, with a message that says what
to set; configs without the key train on whatever the data has, with the digests they had before it existed."""

from __future__ import annotations

import pytest
from ganlib_helpers import digits_split, write_processed

from ganlib.config import ConfigError, load_config, parse_config
from ganlib.train_cli import main
from ganlib.training import model_spec_for

SMALL = {
    "name": "x",
    "model": {"family": "sngan", "z_dim": 8, "g_width": 8, "d_width": 8},
    "train": {"steps": 5},
}


def test_shipped_configs_name_their_resolution() -> None:
    assert load_config("sngan-64").model.resolution == 64
    assert load_config("sngan-128").model.resolution == 128
    assert load_config("default").model.resolution is None


@pytest.mark.parametrize("bad", [48, 100, 4, 2048])
def test_a_resolution_no_family_can_build_is_refused(bad: int) -> None:
    with pytest.raises(ConfigError, match=r"model\.resolution"):
        parse_config({**SMALL, "model": {**SMALL["model"], "resolution": bad}})


def test_training_refuses_data_of_another_resolution() -> None:
    cfg = parse_config({**SMALL, "model": {**SMALL["model"], "resolution": 32}})
    with pytest.raises(ConfigError, match=r"model\.resolution is 32 but the training data is 16px: set"):
        model_spec_for(cfg, digits_split(16, n=32))
    assert model_spec_for(cfg, digits_split(32, n=32)).resolution == 32


def test_train_cli_says_it_in_one_line(tmp_path) -> None:
    data = write_processed(tmp_path / "processed", resolution=16, n=32)
    with pytest.raises(SystemExit, match=r"^model\.resolution is 64 but the training data is 16px: set "):
        main(["--config", "sngan-64", "--data", str(data), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_digest_of_a_config_without_the_key_is_unchanged() -> None:
    """3d7066a09f678563: this config's training digest from the code before model.resolution existed (main
    at b09f05e), so run folders made then still resume."""
    assert parse_config(SMALL).training_digest() == "3d7066a09f678563"
    with_key = parse_config({**SMALL, "model": {**SMALL["model"], "resolution": 16}})
    assert with_key.training_digest() != "3d7066a09f678563"
    # loss.mode_seeking, added later, likewise: off keeps the digest, on changes it.
    off = parse_config({**SMALL, "loss": {**SMALL.get("loss", {}), "mode_seeking": 0.0}})
    assert off.training_digest() == "3d7066a09f678563"
    on = parse_config({**SMALL, "loss": {**SMALL.get("loss", {}), "mode_seeking": 1.0}})
    assert on.training_digest() != "3d7066a09f678563"
