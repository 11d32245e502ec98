"""weightgate: an export-control gateway for closed AI model weights."""
