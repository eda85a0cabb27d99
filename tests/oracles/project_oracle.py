"""Independent plain-Python oracle of SPEC §3 and §4 (shares no code with xfast).

Written straight from the SPEC text with the simplest loops: string labels, lists of
lists, full score matrices, explicit word sets for overlaps. ``None`` from a default-mode
function means "invalid input: xfast must raise"; compat functions never return ``None``.
"""

from __future__ import annotations

from fractions import Fraction


def _entity_ok(a, b, n_labeled):
    return 0 <= a < b and (n_labeled is None or b <= n_labeled)


def heuristic(entities, pairs, n_receiving, *, length_ratio=0.8, merge_distance=1,
              compat=False, n_labeled=None):
    """SPEC §3. Returns (labels or None, stats dict)."""
    stats = dict(entities=len(entities), projected_entities=0, spans=0, no_alignment=0,
                 dropped_length_ratio=0, conflicts=0, failed_sentences=0)
    pairs = [tuple(p) for p in pairs]
    if not compat:
        for a, b, _ in entities:
            if not _entity_ok(a, b, n_labeled):
                return None, None
        for i, j in pairs:
            if i < 0 or j < 0 or j >= n_receiving or (n_labeled is not None and i >= n_labeled):
                return None, None
    labels = ["O"] * n_receiving

    def fail():
        st = {k: 0 for k in stats}
        st["entities"] = len(entities)
        st["failed_sentences"] = 1
        return ["O"] * n_receiving, st

    for a, b, lab in entities:
        if not _entity_ok(a, b, n_labeled):
            return fail()
        # step 1: candidates, walking labeled words then pairs in alignment order
        cands = []
        for i in range(a, b):
            for li, t in pairs:
                if li != i:
                    continue
                if li < 0 or (n_labeled is not None and li >= n_labeled):
                    continue
                joined = False
                for cand in cands:
                    if cand[0] <= t < cand[1]:
                        joined = True
                    elif t == cand[1]:
                        cand[1] = cand[1] + 1
                        joined = True
                    elif t == cand[0] - 1:
                        cand[0] = cand[0] - 1
                        joined = True
                if not joined:
                    cands.append([t, t + 1])
        if not cands:
            stats["no_alignment"] += 1
            continue
        # step 2: merge (stable sort by start)
        if merge_distance > 0:
            order = sorted(range(len(cands)), key=lambda x: (cands[x][0], x))
            merged = []
            for x in order:
                c = list(cands[x])
                if merged and c[0] - merged[-1][1] <= merge_distance:
                    if compat:
                        merged[-1][1] = c[1]
                    else:
                        merged[-1][1] = max(merged[-1][1], c[1])
                else:
                    merged.append(c)
            cands = merged
        # steps 3 and 4
        wrote = 0
        for cs, ce in cands:
            # Python's float division, as the reference computes the ratio
            if not ((ce - cs) / (b - a) > length_ratio):
                stats["dropped_length_ratio"] += 1
                continue
            if cs < 0 or ce > n_receiving:
                return fail()
            if any(labels[w] != "O" for w in range(cs, ce)):
                stats["conflicts"] += 1
                if not compat:
                    continue
            for w in range(cs, ce):
                labels[w] = ("B-" if w == cs else "I-") + lab
            wrote += 1
        stats["spans"] += wrote
        stats["projected_entities"] += 1 if wrote else 0
    return labels, stats


def ngram_candidates(words, *, min_words=1, max_words=0, stop_words=("!", "?")):
    """SPEC §4 ``ngram``."""
    n = len(words)
    mx = max_words if max_words else n
    out = []
    for s in range(n):
        for e in range(s + 1, n + 1):
            length = e - s
            if min_words <= length <= mx and not any(w in stop_words for w in words[s:e]):
                out.append((s, e))
    return out


def ner_candidates(spans, *, sub_spans=False):
    out = []
    for s, e in spans:
        if sub_spans:
            for a in range(s, e):
                for b in range(a + 1, e + 1):
                    out.append((a, b))
        else:
            out.append((s, e))
    return out


def score_matrix(entities, candidates, pairs):
    """Exact scores as Fractions (entities x candidates)."""
    mat = []
    for a, b, _ in entities:
        row = []
        for s, u in candidates:
            k = 0
            for i, j in pairs:
                if a <= i < b and s <= j < u:
                    k += 1
            row.append(Fraction(2 * k, (b - a) + (u - s)) if k else Fraction(0))
        mat.append(row)
    return mat


def _words(span):
    return set(range(span[0], span[1]))


def _write(labels, span, lab):
    """Write one span; False when it leaves the sentence (the reference's IndexError)."""
    s, u = span
    for w in range(s, u):
        if w < 0 or w >= len(labels):
            return False
        labels[w] = ("B-" if w == s else "I-") + lab
    return True


def _validate_match(entities, candidates, pairs, n_receiving, n_labeled):
    for a, b, _ in entities:
        if not _entity_ok(a, b, n_labeled):
            return False
    for s, u in candidates:
        if not 0 <= s < u <= n_receiving:
            return False
    for i, j in pairs:
        if i < 0 or j < 0 or j >= n_receiving or (n_labeled is not None and i >= n_labeled):
            return False
    return True


def greedy(entities, candidates, pairs, n_receiving, *, compat=False, n_labeled=None):
    """SPEC §4 greedy. Returns (labels or None, stats dict)."""
    pairs = [tuple(p) for p in pairs]
    if not compat and not _validate_match(entities, candidates, pairs, n_receiving, n_labeled):
        return None, None
    mat = score_matrix(entities, candidates, pairs)
    picks = []
    while True:
        best, where = Fraction(0), None
        for e in range(len(entities)):
            for c in range(len(candidates)):
                if mat[e][c] > best:
                    best, where = mat[e][c], (e, c)
        if where is None:
            break
        e, c = where
        picks.append(where)
        for x in range(len(candidates)):
            mat[e][x] = Fraction(0)
        chosen = _words(candidates[c])
        for x in range(len(candidates)):
            if x == c or chosen & _words(candidates[x]):
                for y in range(len(entities)):
                    mat[y][x] = Fraction(0)
    labels = ["O"] * n_receiving
    matched, failed = 0, 0
    for e, c in picks:
        if not _write(labels, candidates[c], entities[e][2]):
            failed = 1
            break
        matched += 1
    return labels, dict(entities=len(entities), candidates=len(candidates), matched=matched,
                        unmatched=len(entities) - matched, dropped_overlaps=0,
                        failed_sentences=failed)


def max_matching_weight(entities, candidates, pairs):
    """Best total score of any matching over positive scores (exhaustive; small inputs)."""
    mat = score_matrix(entities, candidates, pairs)
    best = Fraction(0)

    def go(e, used, total):
        nonlocal best
        if e == len(entities):
            best = max(best, total)
            return
        go(e + 1, used, total)
        for c in range(len(candidates)):
            if c not in used and mat[e][c] > 0:
                go(e + 1, used | {c}, total + mat[e][c])

    go(0, frozenset(), Fraction(0))
    return best


def label_assignment(entities, candidates, assignment, n_receiving):
    """Write assigned candidates in the given order, skipping overlaps with written labels."""
    labels = ["O"] * n_receiving
    skipped = 0
    for e, c in assignment:
        words = _words(candidates[c])
        if any(labels[w] != "O" for w in words if 0 <= w < n_receiving):
            skipped += 1
            continue
        if not _write(labels, candidates[c], entities[e][2]):
            break
    return labels, skipped
