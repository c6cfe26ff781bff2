"""The Dagster code location: thin assets over ganlib, checks (gates), resources, schedules and sensors."""
