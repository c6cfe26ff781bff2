"""The declarative alternative to the new-data sensor: every asset carries an eager automation condition,
evaluated by a sensor that is off until an operator turns it on."""

from __future__ import annotations

import dagster as dg
from workspace_helpers import make_workspace

from pipelines.assets.params import ingest_params
from pipelines.definitions import build_defs, build_resources


def test_eager_conditions_are_offered_and_off_by_default(tmp_path):
    defs = build_defs(make_workspace(tmp_path / "ws"), str(tmp_path / "store"))
    sensor = defs.resolve_sensor_def("eager_on_new_data")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    # Evaluated as the sensor would be when on: nothing is requested until upstream has new data; an
    # observed change of params.yaml/the source (what the daemon observes every minute) requests raw_images.
    instance = dg.DagsterInstance.ephemeral()
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0
    from dagster._core.definitions.observe import observe  # in-process observation (no public export)

    resources = build_resources(tmp_path / "ws", str(tmp_path / "store"))
    assert observe([ingest_params], resources=resources, instance=instance).success
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    requested = {r.key.to_user_string() for r in second.results if r.true_subset.size}
    assert requested == {"raw_images"}
