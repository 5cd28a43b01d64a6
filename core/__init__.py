"""Shared primitives, the bottom layer: they import nothing of the project (docs/architecture.md)."""
