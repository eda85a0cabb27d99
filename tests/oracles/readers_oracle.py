"""Independent plain-Python readers of xfast's input formats (shares no code with xfast).

Each function takes a file's bytes and returns ``(sentences, error)``: the sentences read
before the first problem, and ``None`` or ``(code, line)`` of that problem, with the rules the
docs give (docs/formats.md): lines end at ``\\n``; trailing ``\\r``/``\\n`` are dropped; a BOM
opens the file at most; whitespace is what ``str.isspace`` says.
"""

from __future__ import annotations

import json

BOM = b"\xef\xbb\xbf"


def _lines(data: bytes):
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    for no, raw in enumerate(parts, 1):
        if no == 1 and raw.startswith(BOM):
            raw = raw[3:]
        yield no, raw


def _decoded(data: bytes):
    """``(line number, text)`` per line; text is None where the line is not UTF-8."""
    for no, raw in _lines(data):
        try:
            yield no, raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            yield no, None


def _label_ok(label: str) -> bool:
    return label == "O" or (len(label) >= 3 and label[0] in "BI" and label[1] == "-")


def _iob2(labels: list[str]) -> list[str]:
    out, prev = [], "O"
    for lab in labels:
        if lab.startswith("I-") and (prev == "O" or prev[2:] != lab[2:]):
            lab = "B-" + lab[2:]
        out.append(lab)
        prev = lab
    return out


def conll(data: bytes, labels: bool = True):
    """CoNLL: ``[(tokens, labels or None, first line)]`` and the first error."""
    out, toks, labs, first, after_doc, ncols = [], [], [], 0, False, None
    for no, text in _decoded(data):
        if text is None:
            return out, ("E101", no)
        if text.strip() == "":
            if toks:
                out.append((toks, _iob2(labs) if labels else None, first))
                toks, labs = [], []
            elif not after_doc:
                out.append(([], [] if labels else None, no))
            continue
        fields = text.split("\t") if "\t" in text else text.split()
        if fields[0].strip() == "-DOCSTART-":
            after_doc = True
            continue
        after_doc = False
        if labels:
            if len(fields) < 2:
                return out, ("E102", no)
            if ncols is not None and len(fields) != ncols:
                return out, ("E109", no)
            ncols = len(fields)
            if not _label_ok(fields[-1].strip()):
                return out, ("E103", no)
            labs.append(fields[-1].strip())
        if not toks:
            first = no
        toks.append(fields[0].strip())
    if toks:
        out.append((toks, _iob2(labs) if labels else None, first))
    return out, None


def text(data: bytes):
    """Plain text: one sentence per line, tokens split on whitespace."""
    out = []
    for no, line in _decoded(data):
        if line is None:
            return out, ("E101", no)
        out.append((line.split(), None, no))
    return out, None


def jsonl(data: bytes, labels: bool = True, label_names=None):
    """JSON Lines ``{"tokens": [...], "ner_tags": [...]}``; blank lines skipped."""
    out = []
    for no, line in _decoded(data):
        if line is None:
            return out, ("E101", no)
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            return out, ("E105", no)
        toks = rec.get("tokens") if isinstance(rec, dict) else None
        if not isinstance(toks, list) or not all(isinstance(t, str) for t in toks):
            return out, ("E106", no)
        if not labels:
            out.append((toks, None, no))
            continue
        tags = rec.get("ner_tags")
        if not isinstance(tags, list) or len(tags) != len(toks):
            return out, ("E106", no)
        labs = []
        for tag in tags:
            if isinstance(tag, int) and not isinstance(tag, bool):
                if label_names is None or not 0 <= tag < len(label_names):
                    return out, ("E106", no)
                tag = label_names[tag]
            if not isinstance(tag, str):
                return out, ("E106", no)
            if not _label_ok(tag):
                return out, ("E103", no)
            labs.append(tag)
        out.append((toks, _iob2(labs), no))
    return out, None


def pharaoh(data: bytes):
    """Pharaoh: ``i-j`` (optionally ``:score``) pairs per line; ``[pairs]`` per line."""
    out = []
    for no, line in _decoded(data):
        if line is None:
            return out, ("E101", no)
        pairs, scored = [], 0
        for item in line.split():
            pair, colon, score = item.partition(":")
            i, dash, j = pair.partition("-")
            ok = dash and i and j and all(c in "0123456789" for c in i + j)
            if not ok or int(i) > 2**31 - 1 or int(j) > 2**31 - 1:
                return out, ("E107", no)
            if colon:
                try:
                    float(score)
                except ValueError:
                    return out, ("E107", no)
                scored += 1
            pairs.append((int(i), int(j)))
        if scored and scored != len(pairs):
            return out, ("E107", no)
        out.append(pairs)
    return out, None
