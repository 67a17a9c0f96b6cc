"""Reporting: JSON and self-contained HTML writers."""
