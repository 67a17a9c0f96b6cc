"""Delivery model: layout, product naming scheme, and parsers of delivered files."""
