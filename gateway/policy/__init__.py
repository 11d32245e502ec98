"""Export policy: pure data and pure decisions, no I/O beyond loading a pack."""
