"""The Dagster code location: thin assets over ganlib, checks (gates), resources, schedules and sensors."""

import warnings

from dagster import BetaWarning

# Output(data_version=...) is how the DVC hash becomes the Dagster data version; it is marked beta, and the
# warning on every materialization says nothing a user can act on.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*data_version.*")
