"""The ``weightgate`` command line: typer commands over the same services as the HTTP API."""
