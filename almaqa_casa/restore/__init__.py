"""Restore engine: plan, disk model, pipeline and manual paths, SPACESAVING."""
