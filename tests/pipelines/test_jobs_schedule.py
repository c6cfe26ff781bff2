"""The weekly retraining schedule: what it launches, and when."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from dagster._utils.schedules import cron_string_iterator

from pipelines.definitions import ASSETS, CHECKS, SOURCES, defs
from pipelines.jobs import weekly_retrain


def test_retrain_job_covers_the_whole_chain_and_its_gates():
    job = defs.resolve_job_def("retrain")
    # Every asset, and the observable params.yaml sources (each run observes them, so staleness is current).
    assert job.asset_layer.executable_asset_keys == {a.key for a in [*SOURCES, *ASSETS]}
    # The gates run inside the job (as their own steps), so a scheduled run is gated like a manual one.
    nodes = set(job.graph.node_names())
    assert {f"{c.check_key.asset_key.to_user_string()}_{c.check_key.name}" for c in CHECKS} <= nodes


def test_a_tick_requests_one_retrain_run():
    tick = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # a Monday
    result = weekly_retrain.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))
    assert [r.job_name or weekly_retrain.job_name for r in result.run_requests] == ["retrain"]
    assert result.run_requests[0].tags["trigger"] == "weekly_schedule"


def test_ticks_fall_on_mondays_at_three_utc():
    assert weekly_retrain.execution_timezone == "UTC"
    start = datetime(2026, 11, 24, 12, 0, tzinfo=UTC).timestamp()  # a Tuesday
    ticks = cron_string_iterator(start, weekly_retrain.cron_schedule, "UTC")
    first_three = [next(ticks) for _ in range(3)]
    assert [(t.weekday(), t.hour, t.minute) for t in first_three] == [(0, 3, 0)] * 3
    assert [t.day for t in first_three] == [30, 7, 14]  # 2026-11-30, 12-07, 12-14


def test_schedule_is_off_until_a_deployment_turns_it_on():
    assert weekly_retrain.default_status == dg.DefaultScheduleStatus.STOPPED
