"""The GAN config as typed run config: Dagster checks keys and enumerated values at launch, ganlib checks
ranges before the first step does any work, and each error names where the bad value came from."""

from __future__ import annotations

import dagster as dg
import pytest
from workspace_helpers import make_workspace, step_failure

from ganlib.config import ConfigError, load_config
from pipelines.definitions import build_defs


@pytest.fixture
def defs(tmp_path):
    return build_defs(make_workspace(tmp_path / "ws"), str(tmp_path / "store"))


def _run(defs: dg.Definitions, gan_config: dict):
    job = defs.resolve_job_def("retrain")
    return job.execute_in_process(
        run_config={"resources": {"gan_config": {"config": gan_config}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_unknown_key_fails_at_launch(defs):
    with pytest.raises(dg.DagsterInvalidConfigError, match="stpes"):
        _run(defs, {"train": {"stpes": 10}})


def test_value_outside_an_enumeration_fails_at_launch(defs):
    with pytest.raises(dg.DagsterInvalidConfigError, match="family"):
        _run(defs, {"model": {"family": "biggan"}})


def test_out_of_range_value_fails_before_any_asset_runs(defs, tmp_path):
    result = _run(defs, {"train": {"steps": 0}})
    assert not result.success
    assert not result.get_asset_materialization_events()
    message = step_failure(result)
    assert "train.steps: Input should be greater than or equal to 1" in message
    assert "in run config resources.gan_config" in message
    assert not (tmp_path / "ws" / "data" / "raw" / "digits").exists()  # ingestion never started


def test_bad_value_in_a_config_file_names_the_file(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("model: {family: dcgan}\ntrain: {lr_g: -1}\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad, {"train": {"steps": 5}}, overrides_source="run config")
    assert f"train.lr_g: Input should be greater than 0 (got -1, in {bad})" in str(err.value)
    assert "\n" not in str(err.value)  # one line


def test_launchpad_schema_mirrors_ganlib_sections():
    """Every ganlib section and key is a typed field of the resource's config schema (one schema)."""
    from ganlib.config import GANConfig
    from pipelines.resources import GanConfigResource

    fields = GanConfigResource.to_config_schema().as_field().config_type.fields
    for section, info in GANConfig.model_fields.items():
        if section == "name":
            continue
        shape = fields[section].config_type.fields
        assert set(shape) == set(info.annotation.model_fields), section


def test_one_override_syntax_for_the_cli_and_dagster():
    """`make run SET="train.steps=30 model.conditional=auto"` and the train CLI's --set give the same
    overrides; the run config they become is accepted by the resource and loads to the same GAN config."""
    from ganlib.config import parse_overrides
    from pipelines.resources import GanConfigResource
    from pipelines.run_config import main, run_config_for

    assignments = [
        "train.steps=30",
        "eval.fid_max=40",
        "model.d_spectral_norm=true",
        "train.diffaugment=[color]",
    ]
    run_config = run_config_for("default", assignments)
    resource = GanConfigResource(**run_config["resources"]["gan_config"]["config"])
    assert resource.overrides() == parse_overrides(assignments)
    assert resource.load() == load_config("default", parse_overrides(assignments))
    assert main(["train.stpes=3"]) == 2
