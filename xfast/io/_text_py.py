"""Plain-Python twin of ``csrc/_text.pyx`` (same signatures and results).

Selected when ``XFAST_PURE_PYTHON=1`` or when the extension is not built; the tests hold the
kernel to it. It works on decoded lines with ``str.strip`` / ``str.split``, which is what the
kernel reproduces on UTF-8 bytes.

``parse`` contract. ``data[pos:]`` holds whole lines (``\\n``-terminated; with ``final`` the
last may lack it), ``line`` is the number of the line at ``pos``. ``mode`` 0 is CoNLL (one
token per line, the label in the last column, tab-separated or whitespace-separated when the
line has no tab; a blank line ends a sentence and any further blank line is an empty
sentence, except right after ``-DOCSTART-``; a line whose first field is ``-DOCSTART-`` is a
document marker), 1 is plain text (one sentence per line, tokens split on whitespace).
``labels``: the CoNLL label column is required and read into codes; new label types get the
next id in ``types`` (type bytes -> id). Returns ``(text, tok_off, sent_off, codes,
sent_line, consumed, next_line, after_doc, ncols, err, err_line, err_start, err_end)``:
the complete sentences' token bytes and offsets (int64), IOB2 codes (int32, IOB1 read as
IOB2) or None, each sentence's first line; where the next call must start (the first line of
an unfinished sentence) with its line number and state; ``err`` 0 or the kind of the first
bad line (1: fewer than two columns, 2: column count changed, 3: bad label) with its line
number and byte range.
"""

from __future__ import annotations

import numpy as np

ERR_COLUMNS, ERR_NCOLS, ERR_LABEL = 1, 2, 3


def _line_end(data: bytes, p: int, final: bool) -> int | None:
    """Where the line at ``p`` ends (its ``\\n``, or the data's end for a last line when
    ``final``); None when it is not complete yet."""
    nl = data.find(b"\n", p)
    if nl >= 0:
        return nl
    return len(data) if final else None


def _code(label: str, types: dict) -> int:
    if label == "O":
        return 0
    if len(label) > 2 and label[0] in "BI" and label[1] == "-":
        key = label[2:].encode("utf-8")
        t = types.setdefault(key, len(types))
        return 2 * t + (1 if label[0] == "B" else 2)
    return -1


def _iob2(codes: list[int]) -> list[int]:
    prev = 0
    out = []
    for c in codes:
        if c > 0 and c % 2 == 0 and (prev == 0 or (prev - 1) // 2 != (c - 1) // 2):
            c -= 1
        out.append(c)
        prev = c
    return out


def parse(data, pos: int, line: int, mode: int, labels: bool, final: bool, after_doc: bool,
          ncols: int, types: dict) -> tuple:
    """See the module docstring."""
    data = bytes(data)
    end = len(data)
    tokens: list[bytes] = []
    codes: list[int] = []
    sent_off = [0]
    sent_line: list[int] = []
    cur: list[bytes] = []
    cur_codes: list[int] = []
    first = 0
    restart = None  # (pos, line, after_doc, ncols) before the unfinished sentence's first line
    err = (0, 0, 0, 0)

    def close(at: int) -> None:
        tokens.extend(cur)
        codes.extend(_iob2(cur_codes))
        sent_off.append(len(tokens))
        sent_line.append(at)

    p = pos
    while p < end:
        nl = _line_end(data, p, final)
        if nl is None:
            break
        text = data[p:nl].decode("utf-8").rstrip("\r\n")
        if mode == 1:
            cur, cur_codes = [t.encode("utf-8") for t in text.split()], [0] * len(text.split())
            close(line)
            cur, cur_codes = [], []
            line += 1
            p = nl + 1
            continue
        if not text.strip():
            if cur:
                close(first)
                cur, cur_codes = [], []
            elif not after_doc:
                close(line)
            line += 1
            p = nl + 1
            continue
        cols = text.split("\t") if "\t" in text else text.split()
        if cols[0].strip() == "-DOCSTART-":
            after_doc = True
            line += 1
            p = nl + 1
            continue
        if not cur:
            restart = (p, line, after_doc, ncols)
        after_doc = False
        code = 0
        if labels:
            kind = 0
            if len(cols) < 2:
                kind = ERR_COLUMNS
            elif ncols >= 0 and len(cols) != ncols:
                kind = ERR_NCOLS
            else:
                if ncols < 0:
                    ncols = len(cols)
                code = _code(cols[-1].strip(), types)
                if code < 0:
                    kind = ERR_LABEL
            if kind:
                end_of_text = p + len(text.encode("utf-8"))
                err = (kind, line, p, end_of_text)
                break
        if not cur:
            first = line
        cur.append(cols[0].strip().encode("utf-8"))
        cur_codes.append(code)
        line += 1
        p = nl + 1
    p = min(p, end)
    consumed, next_line = p, line
    if mode == 0 and cur and not err[0]:
        if final and p >= end:
            close(first)
        else:
            consumed, next_line, after_doc, ncols = restart
    tok_off = np.zeros(len(tokens) + 1, np.int64)
    np.cumsum([len(t) for t in tokens], out=tok_off[1:])
    return (b"".join(tokens), tok_off, np.array(sent_off, np.int64),
            np.array(codes, np.int32) if labels else None, np.array(sent_line, np.int64),
            consumed, next_line, after_doc, ncols, *err)


def entities(codes, sent_off, compat: bool) -> tuple:
    """Entities of IOB2 codes: ``(ent_off (S+1,), spans (E, 2), types (E,))``, int64."""
    codes = np.asarray(codes).tolist()
    off = [0]
    spans: list[tuple[int, int]] = []
    types: list[int] = []
    so = np.asarray(sent_off).tolist()
    for s in range(len(so) - 1):
        a, b = so[s], so[s + 1]
        start, typ = -1, -1
        for k in range(a, b + 1):
            c = codes[k] if k < b else 0
            if c > 0 and c % 2 == 0 and start >= 0 and (c - 1) // 2 == typ:
                continue
            if start >= 0:
                if not (compat and c > 0 and c % 2 == 1):
                    spans.append((start - a, k - a))
                    types.append(typ)
                start = -1
            if c > 0:
                start, typ = k, (c - 1) // 2
        off.append(len(spans))
    return (np.array(off, np.int64), np.array(spans, np.int64).reshape(-1, 2),
            np.array(types, np.int64))


def stop_mask(text, tok_off, stops: list) -> np.ndarray:
    """uint8 (T,): 1 where the token's bytes equal one of ``stops``."""
    text = bytes(text)
    stops = set(stops)
    to = np.asarray(tok_off).tolist()
    return np.array([text[to[k]:to[k + 1]] in stops for k in range(len(to) - 1)], np.uint8)


def format_conll(text, tok_off, sent_off, codes, table: list) -> bytes:
    """``token<TAB>label`` lines and a blank line after each sentence, as UTF-8 bytes."""
    text = bytes(text)
    to = np.asarray(tok_off).tolist()
    so = np.asarray(sent_off).tolist()
    cs = np.asarray(codes).tolist()
    out = []
    for s in range(len(so) - 1):
        for k in range(so[s], so[s + 1]):
            out.append(text[to[k]:to[k + 1]] + b"\t" + table[cs[k]] + b"\n")
        out.append(b"\n")
    return b"".join(out)


def count(data, pos: int, mode: int, final: bool, after_doc: bool, in_sent: bool) -> tuple:
    """Sentences completed in the whole lines of ``data[pos:]`` (see the kernel)."""
    data = bytes(data)
    end, n, p = len(data), 0, pos
    while p < end:
        nl = _line_end(data, p, final)
        if nl is None:
            break
        text = data[p:nl].decode("utf-8", "replace").rstrip("\r\n")
        p = nl + 1
        if mode == 1:
            n += 1
            continue
        if not text.strip():
            if in_sent:
                n, in_sent = n + 1, False
            elif not after_doc:
                n += 1
            continue
        cols = text.split("\t") if "\t" in text else text.split()
        if cols[0].strip() == "-DOCSTART-":
            after_doc = True
        else:
            after_doc, in_sent = False, True
    if final and in_sent and p >= end:
        n, in_sent = n + 1, False
    return n, min(p, end), after_doc, in_sent
