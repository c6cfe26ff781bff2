"""Where `retrain` runs its steps: Dagster's default here, one Kubernetes pod per step with GAN_EXECUTOR=k8s."""

from __future__ import annotations

import sys
import types

import pytest

from pipelines.jobs import executor_from_env, retrain_job


def test_default_is_dagsters_own_executor(monkeypatch):
    monkeypatch.delenv("GAN_EXECUTOR", raising=False)
    assert executor_from_env() is None
    assert executor_from_env("multiprocess") is None
    assert retrain_job.executor_def is None  # this test session has no GAN_EXECUTOR


def test_k8s_uses_dagster_k8s_step_pods(monkeypatch):
    marker = object()
    monkeypatch.setitem(sys.modules, "dagster_k8s", types.SimpleNamespace(k8s_job_executor=marker))
    monkeypatch.setenv("GAN_EXECUTOR", "k8s")
    assert executor_from_env() is marker


def test_k8s_without_the_package_says_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "dagster_k8s", None)  # makes the import fail
    with pytest.raises(ImportError, match="dagster-k8s"):
        executor_from_env("k8s")


def test_unknown_executor_is_refused():
    with pytest.raises(ValueError, match="GAN_EXECUTOR"):
        executor_from_env("celery")


def test_in_process_runs_every_step_in_the_run_worker():
    import dagster as dg

    assert executor_from_env("in_process") is dg.in_process_executor
