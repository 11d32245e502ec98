"""weightgate: an export-control gateway for closed AI model weights."""

__version__ = "0.1.0"
