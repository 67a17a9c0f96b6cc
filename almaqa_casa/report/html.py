"""Self-contained HTML reports: inline CSS, images as data URIs, no network.

Reports are opened from a laptop, an archive, or a mail attachment, so a page
must work as a single file: no external stylesheets, scripts, fonts or image
files.  The builders return strings; ``write_html`` writes atomically.
"""
from __future__ import annotations

import base64
import html as _html
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_output

__all__ = [
    "CSS",
    "badge",
    "esc",
    "figure_png",
    "format_radec",
    "img",
    "kv_table",
    "page",
    "png_data_uri",
    "section",
    "sky_figure",
    "sky_thumbnail_png",
    "summary_boxes",
    "table",
    "thumbnail_grid",
    "write_html",
]

CSS = """
:root { --err:#b00020; --warn:#b26a00; --info:#1f5fa8; --ok:#2e7d32; --bg:#fafafa; --line:#ddd; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em;
       color: #222; background: #fff; line-height: 1.35; }
h1 { font-size: 1.5em; margin: 0 0 .3em 0; } h2 { font-size: 1.2em; margin-top: 1.6em;
       border-bottom: 1px solid var(--line); padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em 0; font-size: .9em; }
th, td { border: 1px solid var(--line); padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: var(--bg); } tr:nth-child(even) td { background: #fcfcfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, td.file { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .85em;
       word-break: break-all; }
.badge { display: inline-block; padding: 0 .5em; border-radius: .6em; color: #fff;
       font-size: .8em; font-weight: 600; }
.badge.error { background: var(--err); } .badge.warning { background: var(--warn); }
.badge.info { background: var(--info); } .badge.ok, .badge.pass { background: var(--ok); }
.badge.fail { background: var(--err); }
.boxes { display: flex; gap: 1em; flex-wrap: wrap; margin: .5em 0 1em 0; }
.box { border: 1px solid var(--line); border-radius: .4em; padding: .5em 1em; min-width: 7em;
       background: var(--bg); } .box .n { font-size: 1.6em; font-weight: 700; }
.box.error .n { color: var(--err); } .box.warning .n { color: var(--warn); }
.box.info .n { color: var(--info); }
.grid { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; border: 1px solid var(--line); padding: .4em; background: #fff; max-width: 480px; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { font-size: .75em; word-break: break-all; margin-top: .3em; }
.muted { color: #777; }
"""


def esc(value: Any) -> str:
    """HTML-escape ``str(value)`` (None → empty)."""
    return "" if value is None else _html.escape(str(value), quote=True)


def page(title: str, body: str, css: str = CSS, lang: str = "en") -> str:
    """A complete HTML5 document with inline CSS."""
    return (
        f"<!DOCTYPE html>\n<html lang=\"{esc(lang)}\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def section(title: str, content: str, anchor: str | None = None) -> str:
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return f"<section{ident}>\n<h2>{esc(title)}</h2>\n{content}\n</section>\n"


def badge(label: str, cls: str | None = None) -> str:
    """A coloured label (classes: error, warning, info, ok, pass, fail)."""
    return f'<span class="badge {esc(cls or label)}">{esc(label)}</span>'


def _cell(value: Any) -> str:
    """Cell content: strings are escaped; ``Raw`` values are inserted as HTML."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, float):
        return esc(f"{value:.4g}")
    return esc(value)


class Raw(str):
    """A string that is already HTML (inserted without escaping)."""


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
          col_classes: Sequence[str | None] | None = None, empty: str = "none") -> str:
    """An HTML table; cells are escaped unless wrapped in ``Raw``."""
    rows = list(rows)
    if not rows:
        return f'<p class="muted">{esc(empty)}</p>'
    cls = list(col_classes or [None] * len(headers))
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = "".join(
            f'<td{f" class={chr(34)}{esc(c)}{chr(34)}" if c else ""}>{_cell(v)}</td>'
            for v, c in zip(r, cls + [None] * (len(r) - len(cls))))
        body.append(f"<tr>{cells}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n"


def kv_table(items: Mapping[str, Any]) -> str:
    """A two-column key/value table."""
    return table(["item", "value"], [(k, v) for k, v in items.items()])


def summary_boxes(counts: Mapping[str, int]) -> str:
    """Big-number boxes, e.g. {'error': 0, 'warning': 2, 'info': 7}."""
    out = ['<div class="boxes">']
    for k, v in counts.items():
        out.append(f'<div class="box {esc(k)}"><div class="n">{esc(v)}</div><div>{esc(k)}</div></div>')
    out.append("</div>")
    return "\n".join(out)


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding PNG bytes."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("not PNG data (missing PNG signature)")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img(png: bytes, alt: str, width: int | None = None) -> str:
    """An <img> element with the PNG embedded."""
    w = f' width="{int(width)}"' if width else ""
    return f'<img src="{png_data_uri(png)}" alt="{esc(alt)}"{w}>'


def figure_png(fig, dpi: int = 80) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import io

    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def format_radec(ra_deg: float, dec_deg: float) -> str:
    """``'19:30:00.000 -27:00:00.00'`` (sexagesimal, for a figure's origin label)."""
    h = (ra_deg % 360.0) / 15.0
    rh, rem = divmod(round(h * 3600.0 * 1000.0), 3600 * 1000)
    rm, rs = divmod(rem, 60 * 1000)
    sign = "-" if dec_deg < 0 else "+"
    dd, rem = divmod(round(abs(dec_deg) * 3600.0 * 100.0), 3600 * 100)
    dm, ds = divmod(rem, 60 * 100)
    return (f"{int(rh):02d}:{int(rm):02d}:{rs / 1000.0:06.3f} "
            f"{sign}{int(dd):02d}:{int(dm):02d}:{ds / 100.0:05.2f}")


def sky_figure(data, *, title: str, unit: str = "", pixel_arcsec: tuple[float, float] | None = None,
               ref_pixel: tuple[float, float] | None = None, origin: str = "",
               beam: tuple[float, float, float] | None = None, pb=None, pb_level: float = 0.2,
               mask=None, max_pix: int = 256, size: tuple[float, float] = (4.6, 3.9)):
    """A matplotlib Figure of one sky plane with offsets in arcsec, beam, PB and mask contours.

    ``data``, ``pb`` and ``mask`` are 2-D arrays (row 0 at the bottom, FITS
    order).  ``pixel_arcsec`` is (CDELT1, CDELT2) in arcsec, ``ref_pixel``
    the 0-based pixel the offsets start from (the reference pixel, i.e. the
    phase centre of ALMA images); RA offsets increase to the left (east).
    ``beam`` is (bmaj, bmin in arcsec, bpa in deg east of north).  Without
    a pixel size the axes are in pixels and say so.  Masked (NaN) pb pixels
    count as 0, so the PB contour follows the edge of a masked primary beam.
    """
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse

    arr = np.asarray(data, dtype=float)
    step = max(1, int(np.ceil(max(arr.shape) / max_pix)))
    small = arr[::step, ::step]
    finite = small[np.isfinite(small)]
    vmin, vmax = (np.percentile(finite, [1.0, 99.9]) if finite.size else (0.0, 1.0))
    if vmax <= vmin:
        vmax = vmin + 1.0
    ny, nx = small.shape
    sky = pixel_arcsec is not None and ref_pixel is not None
    if sky:
        dx, dy = pixel_arcsec[0] * step, pixel_arcsec[1] * step
        x0, y0 = ref_pixel[0] / step, ref_pixel[1] / step
        xs = (np.arange(nx) - x0) * dx  # offsets of pixel centres (arcsec)
        ys = (np.arange(ny) - y0) * dy
        extent = (xs[0] - dx / 2, xs[-1] + dx / 2, ys[0] - dy / 2, ys[-1] + dy / 2)
    else:
        xs, ys = np.arange(nx) * step, np.arange(ny) * step
        extent = (-0.5 * step, (nx - 0.5) * step, -0.5 * step, (ny - 0.5) * step)
    f = Figure(figsize=size)
    ax = f.add_subplot(1, 1, 1)
    im = ax.imshow(small, origin="lower", cmap="inferno", vmin=vmin, vmax=vmax,
                   interpolation="nearest", extent=extent, aspect="equal")
    cb = f.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label(unit or "(no unit in the header)", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    handles = []
    if pb is not None:
        pbs = np.nan_to_num(np.asarray(pb, dtype=float)[::step, ::step], nan=0.0)
        if (pbs >= pb_level).any() and (pbs < pb_level).any():
            ax.contour(xs, ys, pbs, levels=[pb_level], colors="cyan", linewidths=1.1,
                       linestyles="dashed")
            handles.append(Line2D([], [], color="cyan", ls="--", lw=1.1, label=f"PB {pb_level:g}"))
        elif (pbs >= pb_level).all():
            handles.append(Line2D([], [], color="none", label=f"PB > {pb_level:g} everywhere"))
    if mask is not None:
        ms = np.nan_to_num(np.asarray(mask, dtype=float)[::step, ::step], nan=0.0)
        if (ms > 0.5).any():
            ax.contour(xs, ys, ms, levels=[0.5], colors="lime", linewidths=1.0)
            handles.append(Line2D([], [], color="lime", lw=1.0, label="clean mask"))
    if beam and beam[0] and beam[1] and sky:
        bmaj, bmin, bpa = beam
        # x data = RA offset (east > 0, drawn to the left): PA from north through east
        # is 90 - bpa from the +x data axis
        cx = extent[0] + 0.12 * (extent[1] - extent[0]) + 0.5 * bmaj * np.sign(extent[1] - extent[0])
        cy = extent[2] + 0.10 * (extent[3] - extent[2]) + 0.5 * bmaj * np.sign(extent[3] - extent[2])
        ax.add_patch(Ellipse((cx, cy), width=bmaj, height=bmin, angle=90.0 - (bpa or 0.0),
                             facecolor="white", edgecolor="black", lw=0.6, alpha=0.85))
        handles.append(Line2D([], [], color="white", marker="o", ls="", mec="black",
                              label=f"beam {bmaj:.3g}\"x{bmin:.3g}\""))
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=6, framealpha=0.6,
                  handlelength=1.5, borderpad=0.3)
    ax.set_title(title, fontsize=7)
    ax.tick_params(labelsize=6)
    if sky:
        ax.set_xlabel("\u0394RA (arcsec)" + (f" from {origin}" if origin else ""), fontsize=6.5)
        ax.set_ylabel("\u0394Dec (arcsec)", fontsize=7)
    else:
        ax.set_xlabel("x (pixel; no sky coordinates in the header)", fontsize=7)
        ax.set_ylabel("y (pixel)", fontsize=7)
    return f


def sky_thumbnail_png(data, **kw) -> bytes:
    """PNG bytes of :func:`sky_figure` (same arguments)."""
    return figure_png(sky_figure(data, **kw), dpi=100)


def thumbnail_grid(items: Iterable[tuple[bytes, str]], width: int | None = None) -> str:
    """Figures (PNG bytes, caption) in a wrapping grid."""
    figs = [f"<figure>{img(png, caption, width)}<figcaption>{esc(caption)}</figcaption></figure>"
            for png, caption in items]
    if not figs:
        return '<p class="muted">no images</p>'
    return '<div class="grid">\n' + "\n".join(figs) + "\n</div>\n"


def write_html(path: str | os.PathLike, document: str, overwrite: bool = True) -> Path:
    """Write an HTML document atomically (UTF-8)."""
    with atomic_output(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(document, encoding="utf-8")
    return Path(path)
