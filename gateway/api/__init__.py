"""The HTTP API: a FastAPI app built around already-constructed services."""
