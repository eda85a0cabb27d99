"""Entity projection: labeled-side entities to receiving-side IOB2 labels (docs/projection.md).

Two methods. ``heuristic`` walks each entity's word alignments and labels the aligned spans
(docs/projection.md, *Heuristic projection*). ``match`` scores candidate spans of the receiving
sentence against each entity, ``2k / (len_e + len_c)``, and assigns candidates greedily or by
bipartite matching (docs/projection.md, *Candidate projection*); candidates come from
:func:`ngram_candidates` or :func:`ner_candidates`.

The ``*_batch`` forms convert their inputs once to a columnar batch (flat int64 arrays plus
per-sentence offsets, labels as int ids) and run compiled kernels over the whole batch; the
``*_columnar`` forms take and return that layout directly, for pipelines that already hold it.
``compat=True`` reproduces the reference's quirks (docs/compat.md); by default invalid input
raises :class:`~xfast.errors.DataError` [E303] naming the sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import chain

import numpy as np

from xfast._native import load
from xfast.errors import DataError, ParameterError, check_choice, msg
from xfast.io.labels import Entity

_K = load("xfast.project", "_project")

__all__ = [
    "HeuristicStats",
    "MatchStats",
    "Spans",
    "heuristic",
    "heuristic_batch",
    "heuristic_columnar",
    "match",
    "match_batch",
    "match_columnar",
    "ner_candidates",
    "ngram_candidates",
    "ngram_candidates_batch",
    "ngram_spans",
    "decode_labels",
]

Alignment = "np.ndarray | Iterable[tuple[int, int]]"

METHODS = ("greedy", "bipartite")


@dataclass
class HeuristicStats:
    """Counts from heuristic projection, summed over the batch.

    ``conflicts``: kept spans that overlap words already labeled (dropped by default,
    overwriting in compat mode). ``failed_sentences``: compat-mode sentences turned all ``O``.
    """

    sentences: int = 0
    entities: int = 0
    projected_entities: int = 0
    spans: int = 0
    no_alignment: int = 0
    dropped_length_ratio: int = 0
    conflicts: int = 0
    failed_sentences: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class MatchStats:
    """Counts from candidate matching, summed over the batch.

    ``dropped_overlaps``: bipartite assignments skipped because their candidate overlaps labels
    already written. ``failed_sentences``: compat mode, sentences where the reference fails
    (no full bipartite matching, or a candidate outside the sentence).
    """

    sentences: int = 0
    entities: int = 0
    candidates: int = 0
    matched: int = 0
    unmatched: int = 0
    dropped_overlaps: int = 0
    failed_sentences: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Spans:
    """Ragged spans of a batch: sentence ``i`` owns ``spans[offsets[i]:offsets[i+1]]``.

    ``offsets`` int64 (S+1,), ``spans`` int64 (N, 2) half-open ``[start, end)``.
    """

    offsets: np.ndarray
    spans: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> list[tuple[int, int]]:
        rows = self.spans[self.offsets[i] : self.offsets[i + 1]].tolist()
        return [(a, b) for a, b in rows]


# --------------------------------------------------------------------------- edge helpers


def _int(name: str, value: object, minimum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ParameterError(msg("E202", name=name, expected="an integer", value=value))
    if minimum is not None and value < minimum:
        raise ParameterError(msg("E202", name=name, expected=f"an integer >= {minimum}",
                                 value=value))
    return int(value)


def _offsets(counts: Sequence[int]) -> np.ndarray:
    off = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=off[1:])
    return off


def _pairs(alignments: Sequence[object], what: str = "alignment") -> tuple[np.ndarray, np.ndarray]:
    """Flatten per-sentence pair lists or (k, 2) arrays to (offsets, (P, 2) int64)."""
    fast = _K.flat_pairs(alignments if type(alignments) is list else list(alignments))
    if fast is not None:  # lists of int pairs; anything else is checked below
        return fast
    lists = [a if isinstance(a, (list, tuple, np.ndarray)) else list(a) for a in alignments]
    if not any(isinstance(a, np.ndarray) for a in lists):
        # fast path: one flat pass over Python pairs, checked by total length
        counts = [len(a) for a in lists]
        total = sum(counts)
        items = list(chain.from_iterable(lists))
        try:
            ok = sum(map(len, items)) == 2 * total
        except TypeError:
            ok = False
        if ok:
            flat = np.fromiter(chain.from_iterable(items), dtype=np.int64, count=2 * total)
            return _offsets(counts), flat.reshape(-1, 2)
    parts = []
    for s, a in enumerate(lists):
        if not isinstance(a, np.ndarray) and any(
                not hasattr(p, "__len__") or len(p) != 2 for p in a):
            raise DataError(None, None, msg("E303", index=s, problem=(
                f"{what} must hold (labeled, receiving) pairs")))
        arr = np.asarray(a, dtype=np.int64)
        if arr.size == 0:
            arr = arr.reshape(0, 2)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise DataError(None, None, msg("E303", index=s, problem=(
                f"{what} must have shape (k, 2), got {arr.shape}")))
        parts.append(arr)
    off = _offsets([len(p) for p in parts])
    flat = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)
    return off, np.ascontiguousarray(flat, dtype=np.int64)


def _entities(entities_list: Sequence[Sequence[object]], vocab: dict[str, int]):
    """Flatten entity tuples to (offsets, (E, 2) int64 spans, int64 label ids)."""
    fast = _K.flat_entities(entities_list if type(entities_list) is list else list(entities_list), vocab)
    if fast is not None:  # lists of (int, int, label); anything else is checked below
        return fast
    lists = [e if isinstance(e, (list, tuple)) else list(e) for e in entities_list]
    counts = [len(e) for e in lists]
    flat = list(chain.from_iterable(lists))
    try:
        ok = sum(map(len, flat)) == 3 * len(flat)
    except TypeError:
        ok = False
    if not ok:
        for s, ents in enumerate(lists):
            for e in ents:
                if not hasattr(e, "__len__") or len(e) != 3:
                    raise DataError(None, None, msg("E303", index=s, problem=(
                        f"entity {e!r} is not a (start, end, label) tuple")))
    if not flat:
        return _offsets(counts), np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts, ends, labels = zip(*flat)
    spans = np.empty((len(flat), 2), dtype=np.int64)
    spans[:, 0] = starts
    spans[:, 1] = ends
    ids = np.fromiter((vocab.setdefault(lab, len(vocab)) for lab in labels), dtype=np.int64,
                      count=len(flat))
    return _offsets(counts), spans, ids


def decode_labels(codes: np.ndarray, label_offsets: np.ndarray,
                  vocab: Sequence[str]) -> list[list[str]]:
    """Codes from a ``*_columnar`` call to IOB2 strings, one list per sentence.

    Code ``0`` is ``O``, ``2*i+1`` is ``B-vocab[i]``, ``2*i+2`` is ``I-vocab[i]``.
    """
    table = ["O"]
    for lab in vocab:
        table += ["B-" + str(lab), "I-" + str(lab)]
    return _K.decode(np.ascontiguousarray(codes, dtype=np.int64), np.ascontiguousarray(label_offsets, dtype=np.int64),
                     table)


def _sentence_of(offsets: np.ndarray, k: int) -> int:
    return int(np.searchsorted(offsets, k, side="right") - 1)


def _fail(index: int, problem: str) -> DataError:
    return DataError(None, None, msg("E303", index=index, problem=problem))


def _check_entities(ent_off, ent, n_lab):
    k = _K.first_bad_span(ent_off, ent, n_lab)
    if k >= 0:
        s = _sentence_of(ent_off, k)
        a, b = ent[k].tolist()
        where = "" if n_lab[s] < 0 else f" in a labeled sentence of {n_lab[s]} words"
        raise _fail(s, f"entity {k - ent_off[s]} [{a}, {b}) is not a non-empty span{where}; "
                       "pass compat=True to turn such sentences to all 'O' as the reference does")


def _check_pairs(aln_off, pairs, n_lab, n_rec):
    k = _K.first_bad_pair(aln_off, pairs, n_lab, n_rec)
    if k >= 0:
        s = _sentence_of(aln_off, k)
        i, j = pairs[k].tolist()
        raise _fail(s, f"alignment pair ({i}, {j}) is outside the sentences "
                       f"(receiving side has {n_rec[s]} words); pass compat=True to ignore or "
                       "fail as the reference does")


def _check_candidates(cand_off, cand, n_rec):
    k = _K.first_bad_span(cand_off, cand, n_rec)
    if k >= 0:
        s = _sentence_of(cand_off, k)
        a, b = cand[k].tolist()
        raise _fail(s, f"candidate [{a}, {b}) is not a non-empty span of the {n_rec[s]} "
                       "receiving words")


def _counts(name: str, values: Sequence[object], n: int, allow_none: bool = False):
    if values is None:
        return None
    vals = list(values)
    if len(vals) != n:
        raise ParameterError(msg("E202", name=name, expected=f"a sequence of {n} counts",
                                 value=f"{len(vals)} values"))
    if allow_none:
        vals = [-1 if v is None else v for v in vals]
    minimum = -1 if allow_none else 0
    if set(map(type, vals)) <= {int}:  # plain ints: one conversion, checked as a whole
        try:
            out = np.array(vals, dtype=np.int64)
        except OverflowError:
            out = None
        if out is not None and (not len(out) or out.min() >= minimum):
            return out
    return np.array([_int(name, v, minimum) for v in vals], dtype=np.int64)


def _n_labeled(n_labeled, n_rec):
    """Validate receiving counts; labeled counts as an int64 array, -1 where unknown."""
    if len(n_rec) and n_rec.min() < 0:
        raise ParameterError(msg("E202", name="n_receiving", expected="counts >= 0",
                                 value=int(n_rec.min())))
    if n_labeled is None:
        return np.full(len(n_rec), -1, dtype=np.int64)
    return np.ascontiguousarray(n_labeled, dtype=np.int64)


def _check_common(length: int, *lists: tuple[str, Sequence[object]]) -> None:
    for name, seq in lists:
        if len(seq) != length:
            raise ParameterError(msg("E202", name=name, expected=f"{length} items (one per "
                                     "sentence)", value=f"{len(seq)} items"))


# --------------------------------------------------------------------------- heuristic projection


def heuristic_columnar(ent_offsets: np.ndarray, ent_spans: np.ndarray, ent_labels: np.ndarray,
                       aln_offsets: np.ndarray, pairs: np.ndarray, n_receiving: np.ndarray, *,
                       n_labeled: np.ndarray | None = None, length_ratio: float = 0.8,
                       merge_distance: int = 1, compat: bool = False,
                       ) -> tuple[np.ndarray, np.ndarray, HeuristicStats]:
    """Heuristic projection over a columnar batch of S sentences.

    Inputs: ``ent_offsets`` (S+1,), ``ent_spans`` (E, 2), ``ent_labels`` (E,) label ids >= 0,
    ``aln_offsets`` (S+1,), ``pairs`` (P, 2) ``(labeled, receiving)``, ``n_receiving`` (S,),
    optional ``n_labeled`` (S,) with -1 for unknown; all int64. Returns ``(codes,
    label_offsets, stats)``: int64 codes (see :func:`decode_labels`) of sentence ``i`` at
    ``codes[label_offsets[i]:label_offsets[i+1]]``.
    """
    ratio = float(length_ratio)
    if not ratio >= 0.0 or ratio == float("inf"):
        raise ParameterError(msg("E202", name="length_ratio", expected="a finite number >= 0",
                                 value=length_ratio))
    merge_distance = _int("merge_distance", merge_distance)
    ent_off = np.ascontiguousarray(ent_offsets, dtype=np.int64)
    ent = np.ascontiguousarray(ent_spans, dtype=np.int64).reshape(-1, 2)
    labels = np.ascontiguousarray(ent_labels, dtype=np.int64)
    aln_off = np.ascontiguousarray(aln_offsets, dtype=np.int64)
    pr = np.ascontiguousarray(pairs, dtype=np.int64).reshape(-1, 2)
    n_rec = np.ascontiguousarray(n_receiving, dtype=np.int64)
    n_lab = _n_labeled(n_labeled, n_rec)
    if not compat:
        _check_entities(ent_off, ent, n_lab)
        _check_pairs(aln_off, pr, n_lab, n_rec)
    lab_off = _offsets(n_rec)
    codes = np.zeros(int(lab_off[-1]), dtype=np.int64)
    stats = np.zeros(7, dtype=np.int64)
    _K.heuristic_kernel(ent_off, ent, labels, aln_off, pr, n_lab, n_rec, lab_off, ratio,
                        merge_distance, bool(compat), codes, stats)
    return codes, lab_off, HeuristicStats(len(n_rec), *(int(x) for x in stats))


def heuristic_batch(entities_list: Sequence[Sequence[Entity]],
                    alignments: Sequence[Alignment], n_receiving_list: Sequence[int], *,
                    length_ratio: float = 0.8, merge_distance: int = 1, compat: bool = False,
                    n_labeled_list: Sequence[int | None] | None = None,
                    return_stats: bool = False):
    """Heuristic projection for many sentences: one list of IOB2 labels per sentence.

    ``entities_list[i]``: ``(start, end, label)`` tuples of sentence i's labeled side, in
    projection order; ``alignments[i]``: ``(labeled, receiving)`` pairs or an int (k, 2)
    array; ``n_receiving_list[i]``: receiving word count. ``n_labeled_list`` (optional) bounds
    the labeled indices. With ``return_stats=True`` returns ``(labels, HeuristicStats)``.
    """
    S = len(entities_list)
    _check_common(S, ("alignments", alignments), ("n_receiving_list", n_receiving_list))
    n_rec = _counts("n_receiving_list", n_receiving_list, S)
    n_lab = _counts("n_labeled_list", n_labeled_list, S, allow_none=True)
    vocab: dict[str, int] = {}
    ent_off, ent, ids = _entities(entities_list, vocab)
    aln_off, pr = _pairs(alignments)
    codes, lab_off, stats = heuristic_columnar(
        ent_off, ent, ids, aln_off, pr, n_rec, n_labeled=n_lab, length_ratio=length_ratio,
        merge_distance=merge_distance, compat=compat)
    out = decode_labels(codes, lab_off, list(vocab))
    return (out, stats) if return_stats else out


def heuristic(entities: Sequence[Entity], alignment: Alignment, n_receiving: int, *,
              length_ratio: float = 0.8, merge_distance: int = 1, compat: bool = False,
              n_labeled: int | None = None, return_stats: bool = False):
    """Heuristic projection for one sentence: IOB2 labels of the ``n_receiving`` receiving words.

    See :func:`heuristic_batch`; errors name this sentence as sentence 0.
    """
    res = heuristic_batch([entities], [alignment], [n_receiving], length_ratio=length_ratio,
                          merge_distance=merge_distance, compat=compat,
                          n_labeled_list=None if n_labeled is None else [n_labeled],
                          return_stats=return_stats)
    return (res[0][0], res[1]) if return_stats else res[0]


# --------------------------------------------------------------------------- candidates


def ngram_candidates_batch(words_list: Sequence[Sequence[str]], *, min_words: int = 1,
                           max_words: int = 0, stop_words: Iterable[str] = ("!", "?")) -> Spans:
    """N-gram candidates of many sentences, as columnar :class:`Spans`."""
    min_words = _int("min_words", min_words, 1)
    max_words = _int("max_words", max_words, 0)
    stop = set(stop_words)
    counts = [len(w) for w in words_list]
    word_off = _offsets(counts)
    mask = np.fromiter((w in stop for w in chain.from_iterable(words_list)), dtype=np.uint8,
                       count=int(word_off[-1]))
    return _ngrams(mask, word_off, min_words, max_words)


def ngram_spans(stop_mask: np.ndarray, word_offsets: np.ndarray, *, min_words: int = 1,
                max_words: int = 0) -> Spans:
    """N-gram candidates of a columnar batch: ``stop_mask`` uint8 (T,) marks stop words,
    ``word_offsets`` int64 (S+1,) each sentence's words. Same spans as
    :func:`ngram_candidates_batch`, without Python strings."""
    min_words = _int("min_words", min_words, 1)
    max_words = _int("max_words", max_words, 0)
    mask = np.ascontiguousarray(stop_mask, dtype=np.uint8)
    off = np.ascontiguousarray(word_offsets, dtype=np.int64)
    if off.ndim != 1 or len(off) < 1 or off[0] != 0 or off[-1] != len(mask) or (np.diff(off) < 0).any():
        raise ParameterError(msg("E202", name="word_offsets", expected=f"non-decreasing bounds from 0 to {len(mask)}",
                                 value=off[:8].tolist()))
    return _ngrams(mask, off, min_words, max_words)


def _ngrams(mask: np.ndarray, word_off: np.ndarray, min_words: int, max_words: int) -> Spans:
    ncand = np.zeros(len(word_off) - 1, dtype=np.int64)
    _K.ngram_count_kernel(mask, word_off, min_words, max_words, ncand)
    cand_off = _offsets(ncand)
    spans = np.empty((int(cand_off[-1]), 2), dtype=np.int64)
    _K.ngram_fill_kernel(mask, word_off, min_words, max_words, cand_off, spans)
    return Spans(cand_off, spans)


def ngram_candidates(words: Sequence[str], *, min_words: int = 1, max_words: int = 0,
                     stop_words: Iterable[str] = ("!", "?")) -> list[tuple[int, int]]:
    """``ngram`` candidates: spans of ``min_words..max_words`` words (0: the sentence
    length) with no stop word (whole-token equality), ordered by start, then end."""
    return ngram_candidates_batch([words], min_words=min_words, max_words=max_words,
                                  stop_words=stop_words)[0]


def ner_candidates(entities: Iterable[Sequence[object]], *,
                   sub_spans: bool = False) -> list[tuple[int, int]]:
    """``ner`` candidates: the spans of receiving-side NER entities (types ignored).

    ``entities``: ``(start, end, label)`` or ``(start, end)``; with ``sub_spans=True`` every
    sub-span of each, by start then end, not deduplicated.
    """
    spans = [(int(e[0]), int(e[1])) for e in entities]
    if not sub_spans:
        return spans
    return [(a, b) for s, u in spans for a in range(s, u) for b in range(a + 1, u + 1)]


# --------------------------------------------------------------------------- candidate matching


def _bipartite(ent_off, ent, ids, cand_off, cand, aln_off, pr, n_rec, lab_off, compat, codes,
               stats):
    """Bipartite matching per sentence with scipy (no published number uses this mode)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    ne = np.diff(ent_off)
    nc = np.diff(cand_off)
    score_off = _offsets(ne * nc)
    scores = np.zeros(int(score_off[-1]), dtype=np.float64)
    _K.scores_kernel(ent_off, ent, cand_off, cand, aln_off, pr, score_off, scores)
    for s in range(len(n_rec)):
        E, C = int(ne[s]), int(nc[s])
        stats[0] += E
        stats[1] += C
        if E == 0:
            continue
        M = scores[score_off[s] : score_off[s + 1]].reshape(E, C)
        if compat:
            rows = np.flatnonzero((M > 0).any(axis=1))
            try:
                r, c = min_weight_full_bipartite_matching(csr_matrix(M[rows]), maximize=True)
            except ValueError:  # no full matching: the reference keeps the sentence all O
                stats[3] += E
                stats[5] += 1
                continue
            r = rows[r]
        else:
            r, c = linear_sum_assignment(M, maximize=True)
            keep = M[r, c] > 0
            r, c = r[keep], c[keep]
        o, n = int(lab_off[s]), int(n_rec[s])
        mask = np.zeros(n, dtype=bool)
        matched = 0
        failed = False
        for e, k in zip(r.tolist(), c.tolist()):
            a, b = cand[cand_off[s] + k].tolist()
            if mask[max(a, 0) : max(b, 0)].any():
                stats[4] += 1
                continue
            code = int(ids[ent_off[s] + e])
            for w in range(a, b):
                if w < 0 or w >= n:
                    failed = True  # compat only: the reference stops at its IndexError
                    break
                codes[o + w] = 2 * code + (1 if w == a else 2)
            if failed:
                break
            mask[a:b] = True
            matched += 1
        stats[2] += matched
        stats[3] += E - matched
        stats[5] += failed


def match_columnar(ent_offsets: np.ndarray, ent_spans: np.ndarray, ent_labels: np.ndarray,
                   candidates: Spans, aln_offsets: np.ndarray, pairs: np.ndarray,
                   n_receiving: np.ndarray, *, method: str = "greedy", compat: bool = False,
                   n_labeled: np.ndarray | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, MatchStats]:
    """Candidate matching over a columnar batch; inputs as :func:`heuristic_columnar` plus
    ``candidates`` (:class:`Spans`). Returns ``(codes, label_offsets, stats)``."""
    check_choice("method", method, METHODS)
    ent_off = np.ascontiguousarray(ent_offsets, dtype=np.int64)
    ent = np.ascontiguousarray(ent_spans, dtype=np.int64).reshape(-1, 2)
    ids = np.ascontiguousarray(ent_labels, dtype=np.int64)
    cand_off = np.ascontiguousarray(candidates.offsets, dtype=np.int64)
    cand = np.ascontiguousarray(candidates.spans, dtype=np.int64).reshape(-1, 2)
    aln_off = np.ascontiguousarray(aln_offsets, dtype=np.int64)
    pr = np.ascontiguousarray(pairs, dtype=np.int64).reshape(-1, 2)
    n_rec = np.ascontiguousarray(n_receiving, dtype=np.int64)
    n_lab = _n_labeled(n_labeled, n_rec)
    if not compat:
        _check_entities(ent_off, ent, n_lab)
        _check_candidates(cand_off, cand, n_rec)
        _check_pairs(aln_off, pr, n_lab, n_rec)
    lab_off = _offsets(n_rec)
    codes = np.zeros(int(lab_off[-1]), dtype=np.int64)
    stats = np.zeros(6, dtype=np.int64)
    if method == "greedy":
        _K.greedy_kernel(ent_off, ent, ids, cand_off, cand, aln_off, pr, n_rec, lab_off,
                         bool(compat), codes, stats)
    else:
        _bipartite(ent_off, ent, ids, cand_off, cand, aln_off, pr, n_rec, lab_off,
                   bool(compat), codes, stats)
    return codes, lab_off, MatchStats(len(n_rec), *(int(x) for x in stats))


def _spans(candidates_list: Spans | Sequence[Sequence[tuple[int, int]]]) -> Spans:
    if isinstance(candidates_list, Spans):
        return candidates_list
    off, flat = _pairs(candidates_list, what="candidates")
    return Spans(off, flat)


def match_batch(entities_list: Sequence[Sequence[Entity]],
                candidates_list: Spans | Sequence[Sequence[tuple[int, int]]],
                alignments: Sequence[Alignment], n_receiving_list: Sequence[int], *,
                method: str = "greedy", compat: bool = False,
                n_labeled_list: Sequence[int | None] | None = None,
                return_stats: bool = False):
    """Candidate matching for many sentences: one list of IOB2 labels per sentence.

    ``candidates_list[i]``: ``(start, end)`` receiving spans of sentence i (or a
    :class:`Spans` from :func:`ngram_candidates_batch`); other arguments as
    :func:`heuristic_batch`. ``method``: ``"greedy"`` or ``"bipartite"``. With
    ``return_stats=True`` returns ``(labels, MatchStats)``.
    """
    check_choice("method", method, METHODS)
    S = len(entities_list)
    _check_common(S, ("candidates_list", candidates_list), ("alignments", alignments),
                  ("n_receiving_list", n_receiving_list))
    n_rec = _counts("n_receiving_list", n_receiving_list, S)
    n_lab = _counts("n_labeled_list", n_labeled_list, S, allow_none=True)
    vocab: dict[str, int] = {}
    ent_off, ent, ids = _entities(entities_list, vocab)
    aln_off, pr = _pairs(alignments)
    codes, lab_off, stats = match_columnar(
        ent_off, ent, ids, _spans(candidates_list), aln_off, pr, n_rec, method=method,
        compat=compat, n_labeled=n_lab)
    out = decode_labels(codes, lab_off, list(vocab))
    return (out, stats) if return_stats else out


def match(entities: Sequence[Entity], candidates: Sequence[tuple[int, int]],
          alignment: Alignment, n_receiving: int, *, method: str = "greedy",
          compat: bool = False, n_labeled: int | None = None, return_stats: bool = False):
    """Candidate matching for one sentence: IOB2 labels of the ``n_receiving`` receiving words."""
    res = match_batch([entities], [candidates], [alignment], [n_receiving], method=method,
                      compat=compat, n_labeled_list=None if n_labeled is None else [n_labeled],
                      return_stats=return_stats)
    return (res[0][0], res[1]) if return_stats else res[0]
