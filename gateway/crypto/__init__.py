"""Encryption: the file format (pure), key release with HPKE, and keystores."""
