"""int8 inference (cext/int8.c): a weight matrix kept as int8 rows with a power-of-two scale each,
and every product W x computed from x quantized the same way, in integers.

A row x is stored as q and s = 2^e: e the least integer in [MIN_EXP, MAX_EXP] with max|x| <= 127 s
(MAX_EXP if none: the row saturates), q_k = round(x_k / s), ties to even, within [-127, 127]. So q s
is x within s / 2 <= max|x| / 127 (or 2^-127 at e = MIN_EXP), and q s quantizes back to q and s.

The product of a weight row (q_w, s_w) and an input (q_x, s_x) is s_w s_x sum_k q_wk q_xk: in real
numbers, exactly the float product of the rows' quantized values, W^ x^. Here it is that value in
double; the core rounds it to float32 once it has the integer sum (((float)sum * s_w) * s_x).

Against the float product W x the error of one output is at most
    |W x - W^ x^| <= s_x / 2 sum_k |w_k| + s_w / 2 sum_k |x^_k|          (bound below)
(W x - W^ x^ = W (x - x^) + (W - W^) x^, each difference at most half its scale).

A model's int8 parameters (quantized): each 2-D tensor an Int8Matrix, each 1-D tensor (a bias) as
it is. The reference's forward runs on them unchanged: tensor.matvec hands a product to the matrix,
an embedding row is read expanded, and a one-hot input quantizes to 64 at its token (scale 2^-6),
which picks the column exactly, as the core's gather does. A condition is not supported here: the
reference joins W_ih and W_cond into one matrix, where the core quantizes x and v apart.
"""

import math

MIN_EXP = -126   # the least scale: float32's least normal number
MAX_EXP = 100    # rows beyond 127 * 2^100 saturate


def row_scale(row):
    """The power-of-two scale of a row; NaN if it holds a NaN or an infinity."""
    if not all(math.isfinite(x) for x in row):
        return math.nan
    m = max((abs(x) for x in row), default=0.0)
    if m == 0.0:
        return 2.0 ** MIN_EXP
    _, top = math.frexp(m)                       # m = f 2^top, f in [0.5, 1)
    e = top - 7 if m <= 127.0 * 2.0 ** (top - 7) else top - 6
    return 2.0 ** min(max(e, MIN_EXP), MAX_EXP)


def quantize(row):
    """(q, scale): q the ints of the row at its scale (all 0 with a NaN scale)."""
    s = row_scale(row)
    if math.isnan(s):
        return [0] * len(row), s
    return [min(max(round(x / s), -127), 127) for x in row], s   # round: to nearest, ties to even


def expand(q, scale):
    return [qk * scale for qk in q]


def bound(w_row, x):
    """The largest |W x - W^ x^| for this row of W and this x (module docstring)."""
    _, s_w = quantize(w_row)
    q_x, s_x = quantize(x)
    return s_x / 2 * sum(abs(w) for w in w_row) + s_w / 2 * sum(abs(v) for v in expand(q_x, s_x))


class Int8Matrix:
    """A matrix (R, C) as int8 rows: indexing gives a row's values (q s); matvec, the int8 product."""

    def __init__(self, rows):
        self.rows = [quantize(row) for row in rows]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, r):
        return expand(*self.rows[r])

    def matvec(self, x):
        q_x, s_x = quantize(x)
        return [s_w * s_x * sum(a * b for a, b in zip(q_w, q_x)) for q_w, s_w in self.rows]


def quantized(cfg, tensors):
    """A model's tensors (unflatten's dict) at int8: 2-D tensors quantized, biases as they are."""
    if getattr(cfg, "cond", "none") != "none":
        raise ValueError("the reference's int8 model has no condition (it joins W_ih and W_cond)")
    return {name: Int8Matrix(t) if t and isinstance(t[0], list) else t for name, t in tensors.items()}
