"""Reporting: atomic JSON writer and self-contained HTML helpers.

``jsonio.write_json`` writes JSON atomically (numpy-aware, NaN → null);
``html`` builds single-file HTML pages (inline CSS, PNGs as data URIs).
"""
from .html import (
                   CSS,
                   Raw,
                   badge,
                   esc,
                   figure_png,
                   img,
                   kv_table,
                   page,
                   png_data_uri,
                   section,
                   summary_boxes,
                   table,
                   thumbnail_grid,
                   write_html,
)
from .jsonio import dumps, read_json, to_jsonable, write_json

__all__ = [
                   "CSS",
                   "Raw",
                   "badge",
                   "dumps",
                   "esc",
                   "figure_png",
                   "img",
                   "kv_table",
                   "page",
                   "png_data_uri",
                   "read_json",
                   "section",
                   "summary_boxes",
                   "table",
                   "thumbnail_grid",
                   "to_jsonable",
                   "write_html",
                   "write_json",
]
