"""Shared test set-up: tests never write into the checkout; they work in temp dirs."""

from __future__ import annotations

import os

# Torch on 2 cores: keep intra-op threads at the core count so parallel helpers don't oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
