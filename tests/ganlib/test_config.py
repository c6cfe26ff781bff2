"""The typed config: named configs load, and bad keys or values fail before training, naming the key and
the allowed values."""

from __future__ import annotations

import pytest

from ganlib.config import CONFIG_DIR, ConfigError, load_config, parse_config

NAMED = {"dcgan": "dcgan", "sngan": "sngan", "stylegan-lite": "stylegan_lite", "wgan-gp": "sngan"}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_each_family_has_a_named_config(name: str) -> None:
    cfg = load_config(name)
    assert cfg.name == name and cfg.model.family == NAMED[name]
    assert (CONFIG_DIR / f"{name}.yaml").is_file()


def test_named_configs_choose_their_losses() -> None:
    assert load_config("wgan-gp").loss.kind == "wgan_gp" and load_config("wgan-gp").train.n_critic == 5
    assert load_config("wgan-gp").model.d_spectral_norm is False
    assert load_config("sngan").loss.kind == "hinge"
    sngan = load_config("sngan").train
    assert sngan.lr_d > sngan.lr_g  # TTUR


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'train\.stpes'"):
        parse_config({"train": {"stpes": 10}})
    with pytest.raises(ConfigError, match=r"unknown key 'optimizer'"):
        parse_config({"optimizer": {}})


def test_wrong_enum_value_names_the_allowed_values() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"loss": {"kind": "wasserstein"}})
    msg = str(err.value)
    assert "loss.kind" in msg and "'wasserstein'" in msg
    for allowed in ("nonsaturating", "minimax", "hinge", "wgan_gp", "lsgan"):
        assert allowed in msg
    with pytest.raises(ConfigError, match=r"model\.family.*stylegan_lite"):
        parse_config({"model": {"family": "biggan"}})
    with pytest.raises(ConfigError, match=r"loss\.egan_mutations\.0.*least_squares"):
        parse_config({"loss": {"egan_mutations": ["lsgan"]}})


def test_out_of_range_values_are_named() -> None:
    with pytest.raises(ConfigError, match=r"train\.n_critic"):
        parse_config({"train": {"n_critic": 0}})
    with pytest.raises(ConfigError, match=r"loss\.label_smoothing"):
        parse_config({"loss": {"label_smoothing": 0.5}})
    with pytest.raises(ConfigError, match=r"model\.style_mixing"):
        parse_config({"model": {"style_mixing": 1.5}})
    with pytest.raises(ConfigError, match=r"name"):
        parse_config({"name": "has space"})


def test_overrides_merge_and_validate() -> None:
    cfg = load_config("dcgan", {"train": {"steps": 7}, "loss": {"kind": "hinge"}})
    assert cfg.train.steps == 7 and cfg.loss.kind == "hinge" and cfg.model.family == "dcgan"
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        load_config("dcgan", {"train": {"batch_size": "many"}})


def test_unknown_config_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="stylegan-lite"):
        load_config("no-such-config")


def test_cli_rejects_a_bad_config_before_touching_data(tmp_path) -> None:
    from ganlib.train_cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  family: dcgan\n  widht: 8\n")
    # The data folder does not exist: the config error must come first, naming the key.
    with pytest.raises(SystemExit, match=r"unknown key 'model\.widht'"):
        main(["--config", str(path), "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match=r"loss\.kind"):
        main(
            ["--config", "dcgan", "--set", "loss.kind=wgan", "--data", str(tmp_path), "--out", str(tmp_path)]
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("yaml_text", "where", "why"),
    [
        ("train:\n  lr_g: .inf\n", "train.lr_g", "finite number"),
        ("train:\n  lr_d: .nan\n", "train.lr_d", "finite number"),
        ("eval:\n  fid_max: -.inf\n", "eval.fid_max", "finite number"),
        ("train:\n  steps: true\n", "train.steps", "got a boolean"),
        ("train:\n  lr_g: false\n", "train.lr_g", "got a boolean"),
        ("train:\n  betas: [true, 0.9]\n", "train.betas", "got a boolean"),
        ("train:\n  betas: [5, -3]\n", "train.betas.0", "less than 1"),
        ("train:\n  betas: [0.5, -3]\n", "train.betas.1", "greater than or equal to 0"),
        ("train:\n  betas: [0.5, 1.0]\n", "train.betas.1", "less than 1"),
        ("export:\n  model_name: ../evil\n", "export.model_name", "invalid model name '../evil'"),
        ("export:\n  model_name: a/b\n", "export.model_name", "invalid model name 'a/b'"),
        ("export:\n  model_name: ''\n", "export.model_name", "invalid model name ''"),
    ],
)
def test_hostile_values_are_rejected_naming_key_and_reason(
    tmp_path, yaml_text: str, where: str, why: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message  # one line for the user
    line = next(p for p in message.split(": ", 1)[1].split("; ") if p.startswith(f"{where}:"))
    assert why in line, str(err.value)


def test_numbers_that_look_odd_but_are_fine_still_load(tmp_path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("train:\n  betas: [0, 0.99]\n  lr_g: 1\n  steps: 3\nexport:\n  model_name: my-model.v2\n")
    cfg = load_config(path)
    assert cfg.train.betas == (0.0, 0.99) and cfg.train.lr_g == 1.0 and cfg.train.steps == 3
    assert cfg.export.model_name == "my-model.v2"
