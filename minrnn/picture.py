"""A picture of attention: for each translation, its alignment matrix (decoder steps x source
characters) as an SVG heatmap, all of them in one self-contained HTML page that a browser opens."""

import html

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


def attention_page(items, title="minrnn attention"):
    """items: (source text, translation text, svg) for each translation."""
    body = "\n".join(f"<section><h2>{html.escape(s)} \u2192 {html.escape(t)}</h2>\n{svg}\n</section>"
                     for s, t, svg in items)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em} h2{font-size:1em;font-weight:normal;"
            "font-family:monospace}</style></head>\n<body>\n"
            f"<p>Attention of each translation: row t is the decoder's step t (the character it wrote, or "
            f"&lt;/s&gt; for the end), column s the source's character s; darker is more weight "
            f"(each row sums to 1). Hover over a cell for its value.</p>\n{body}\n</body></html>\n")
