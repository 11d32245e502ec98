"""Benchmarks: each figure is a ratio against a baseline measured in the same run.

The budgets they are held to, and why each is a ratio, are in ``docs/DESIGN.md`` §5.
"""
