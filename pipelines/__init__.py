"""The Dagster code location: thin assets over ganlib, checks (gates), resources, schedules and sensors."""

import warnings

from dagster import BetaWarning

# Output(data_version=...) is how the DVC hash becomes the Dagster data version; it is marked beta, and the
# warning on every materialization says nothing a user can act on.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*data_version.*")
# Observable sources (params.yaml sections) and jobs that include them are marked beta likewise.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*observable_source_asset.*")
warnings.filterwarnings("ignore", category=BetaWarning, message=".*include_sources.*")
