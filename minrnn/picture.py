"""A picture of attention: for each translation, its alignment matrix (decoder steps x source
characters) as an SVG heatmap; for each caption, the image (or its grid) once per token written,
with where the model looked as a heat overlay, as in the lectures' figure. Either as one
self-contained HTML page that a browser opens."""

import html

import numpy as np

CELL = 18          # pixels per matrix cell
MARGIN = 8


def label(symbol):
    """A character as an axis label: spaces and controls made visible."""
    return {" ": "\u2423", "\t": "\u21e5", "\n": "\u21b5"}.get(symbol, symbol)


def shade(alpha):
    """White (0) to dark blue (1)."""
    a = min(max(float(alpha), 0.0), 1.0)
    r, g, b = (round(255 - a * (255 - c)) for c in (8, 48, 107))
    return f"rgb({r},{g},{b})"


def attention_svg(source, output, alphas):
    """source: the source characters (n); output: the characters written, then "</s>" for the end token
    when it was written (one per row of alphas); alphas: (rows, n) weights. Rows are decoder steps
    (down), columns source positions (across)."""
    rows, cols = len(alphas), len(source)
    left, top = MARGIN + 3 * CELL, MARGIN + CELL
    width, height = left + cols * CELL + MARGIN, top + rows * CELL + MARGIN
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="monospace" font-size="{CELL - 6}">']
    for j, ch in enumerate(source):
        x = left + j * CELL + CELL / 2
        parts.append(f'<text x="{x}" y="{top - 5}" text-anchor="middle">{html.escape(label(ch))}</text>')
    for i, row in enumerate(alphas):
        y = top + i * CELL
        parts.append(f'<text x="{left - 5}" y="{y + CELL - 5}" text-anchor="end">{html.escape(label(output[i]))}</text>')
        for j, a in enumerate(row[:cols]):
            parts.append(f'<rect x="{left + j * CELL}" y="{y}" width="{CELL}" height="{CELL}" fill="{shade(a)}">'
                         f'<title>{html.escape(label(output[i]))} \u2190 {html.escape(label(source[j]))}: '
                         f'{float(a):.3f}</title></rect>')
    parts.append("</svg>")
    return "\n".join(parts)


PIXEL = 5          # screen pixels per image pixel (or per grid place, without an image)


def caption_svg(tokens, alphas, geometry, image=None, key="image"):
    """tokens: what was written at each step ("</s>" for the end token); alphas: (steps, L) weights over
    the grid's places, row-major over geometry (Hg, Wg), Hg * Wg = L; image: (h, w) gray values, or
    None (the grid's places drawn as cells). One panel per step: the image, and over it each place's
    weight as red of opacity alpha / the step's largest. key: the image's id, unique in a page."""
    Hg, Wg = geometry
    if image is None:
        image = np.full((Hg * 4, Wg * 4), 0.85)
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape
    low, high = float(image.min()), float(image.max())
    gray = (image - low) / (high - low) if high > low else np.zeros_like(image)
    pw, ph = w * PIXEL, h * PIXEL
    cw, ch = pw / Wg, ph / Hg
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{len(alphas) * (pw + MARGIN) + MARGIN}" '
             f'height="{ph + CELL + 2 * MARGIN}" font-family="monospace" font-size="{CELL - 4}">',
             f'<defs><g id="{key}">']
    for y in range(h):
        for x in range(w):
            v = round(255 * (1.0 - gray[y, x]))   # ink dark on white
            parts.append(f'<rect x="{x * PIXEL}" y="{y * PIXEL}" width="{PIXEL}" height="{PIXEL}" '
                         f'fill="rgb({v},{v},{v})"/>')
    parts.append("</g></defs>")
    for k, (token, alpha) in enumerate(zip(tokens, alphas)):
        left, top = MARGIN + k * (pw + MARGIN), MARGIN + CELL
        parts.append(f'<text x="{left + pw / 2}" y="{top - 4}" text-anchor="middle">{html.escape(label(token))}</text>')
        parts.append(f'<use href="#{key}" x="{left}" y="{top}"/>')
        peak = max(float(max(alpha)), 1e-12)
        for place, a in enumerate(alpha):
            r, c = divmod(place, Wg)
            parts.append(f'<rect x="{left + c * cw:.1f}" y="{top + r * ch:.1f}" width="{cw:.1f}" height="{ch:.1f}" '
                         f'fill="red" fill-opacity="{0.75 * float(a) / peak:.3f}"><title>{html.escape(label(token))}: '
                         f'place {place} ({r}, {c}) {float(a):.3f}</title></rect>')
    parts.append("</svg>")
    return "\n".join(parts)


TRANSLATIONS = ("Attention of each translation: row t is the decoder's step t (the character it wrote, or "
                "&lt;/s&gt; for the end), column s the source's character s; darker is more weight (each row "
                "sums to 1). Hover over a cell for its value.")
CAPTIONS = ("Attention of each caption: a panel per token written (&lt;/s&gt;: the end), the image under a red "
            "overlay on the places of the grid the model looked at as it wrote that token (the most opaque: "
            "the step's largest weight; each step's weights sum to 1). Hover over a place for its weight.")


def attention_page(items, title="minrnn attention", about=TRANSLATIONS):
    """items: (source text, translation text, svg) for each translation (or caption)."""
    body = "\n".join(f"<section><h2>{html.escape(s)} \u2192 {html.escape(t)}</h2>\n{svg}\n</section>"
                     for s, t, svg in items)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em} h2{font-size:1em;font-weight:normal;"
            "font-family:monospace}</style></head>\n<body>\n"
            f"<p>{about}</p>\n{body}\n</body></html>\n")
