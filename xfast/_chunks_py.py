"""Plain-Python twin of ``csrc/_chunks.pyx`` (same signature and results).

Selected when ``XFAST_PURE_PYTHON=1`` or when the extension is not built.
"""

from __future__ import annotations

import numpy as np

_O, _DOT, _B, _I, _E, _S = (ord(c) for c in "O.BIES")


def _ends(pt: int, t: int, ptype: int, ty: int) -> bool:
    if pt in (_E, _S):
        return True
    if pt in (_B, _I) and t in (_B, _S, _O):
        return True
    return pt not in (_O, _DOT) and ptype != ty


def _starts(pt: int, t: int, ptype: int, ty: int) -> bool:
    if t in (_B, _S):
        return True
    if pt in (_E, _S, _O) and t in (_E, _I):
        return True
    return t not in (_O, _DOT) and ptype != ty


def _chunk(ids, offsets, tag_of, type_of, sep_type):
    chunks = []
    pos = begin = 0
    pt, ptype = _O, -1
    for s in range(len(offsets) - 1):
        seq = [(int(tag_of[i]), int(type_of[i])) for i in ids[offsets[s] : offsets[s + 1]]]
        for t, ty in seq + [(_O, sep_type)]:
            if _ends(pt, t, ptype, ty):
                chunks.append((ptype, begin, pos - 1))
            if _starts(pt, t, ptype, ty):
                begin = pos
            pt, ptype = t, ty
            pos += 1
    return chunks


def count(gold, pred, offsets, tag_of, type_of, sep_type, n_types):
    """Return ``(tp, n_true, n_pred, correct_tokens)`` per type id, as seqeval counts them."""
    g = _chunk(gold, offsets, tag_of, type_of, sep_type)
    p = _chunk(pred, offsets, tag_of, type_of, sep_type)
    tp = np.zeros(n_types, np.int64)
    nt = np.zeros(n_types, np.int64)
    npr = np.zeros(n_types, np.int64)
    for ty, _, _ in g:
        nt[ty] += 1
    for ty, _, _ in p:
        npr[ty] += 1
    for ty, _, _ in set(g) & set(p):
        tp[ty] += 1
    return tp, nt, npr, int(np.sum(np.asarray(gold) == np.asarray(pred)))


def ratio_sum(gold, pred, offsets, is_b, total):
    """``total`` plus, sentence by sentence in order, ``#B pred / #B gold`` (1.0 or 0.0 when
    gold has none): the running sum behind ``proj_ratio``. ``is_b[id]`` marks ``B-`` ids."""
    off = np.asarray(offsets).tolist()
    for s in range(len(off) - 1):
        ng = int(np.sum(np.asarray(is_b)[np.asarray(gold[off[s]:off[s + 1]], np.int64)]))
        npr = int(np.sum(np.asarray(is_b)[np.asarray(pred[off[s]:off[s + 1]], np.int64)]))
        total += npr / ng if ng else float(npr == 0)
    return total
