"""The little linear algebra the reference needs, on plain lists.

A vector is a list of floats; a matrix is a list of rows (lists of equal length), row-major like
PyTorch, so W[i][j] is row i, column j.
"""

import math
import struct


def zeros(n):
    return [0.0] * n


def zeros_matrix(rows, cols):
    return [[0.0] * cols for _ in range(rows)]


def matvec(W, x):
    """W (R, C) times x (C) -> (R); a matrix with its own product (quantize.Int8Matrix) computes it."""
    if hasattr(W, "matvec"):
        return W.matvec(x)
    return [sum(w * xj for w, xj in zip(row, x)) for row in W]


def matvec_t(W, y):
    """W transposed (C, R) times y (R) -> (C): how a gradient flows back through W x."""
    out = [0.0] * len(W[0])
    for row, yi in zip(W, y):
        for j, w in enumerate(row):
            out[j] += w * yi
    return out


def add_outer(G, a, b):
    """G (R, C) += outer(a (R), b (C)): the gradient of W in W x is outer(dy, x)."""
    for row, ai in zip(G, a):
        for j, bj in enumerate(b):
            row[j] += ai * bj


def add_into(g, a):
    """g += a, elementwise, in place."""
    for j, aj in enumerate(a):
        g[j] += aj


def vsum(*vectors):
    """Elementwise sum of equal-length vectors."""
    return [sum(column) for column in zip(*vectors)]


def sigmoid(a):
    # Two branches so that exp never overflows.
    if a >= 0:
        return 1.0 / (1.0 + math.exp(-a))
    e = math.exp(a)
    return e / (1.0 + e)


def one_hot(index, n):
    x = [0.0] * n
    x[index] = 1.0
    return x


def float32(x):
    """x rounded to the nearest float32 (kept as a Python float)."""
    return struct.unpack("f", struct.pack("f", x))[0]
