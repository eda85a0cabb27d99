"""xfast.evaluate vs seqeval 1.2.2 on all 20 MasakhaNER 2.0 test sets (issue 2: >= 20x).

Run: ``python -m pytest benchmarks/bench_evaluate.py -s``. Both scorers run in this process on
the same label lists (predictions are gold with 10% of the tokens relabelled); the ratio
is of the best of several rounds each.
"""

import random
import time
import warnings

import pytest

from tests._pipeline_helpers import full_data
from xfast.evaluate import scores
from xfast.io import read_conll

seqeval = pytest.importorskip("seqeval.metrics")

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-DATE", "I-DATE"]


def _corpora():
    rng = random.Random(0)
    out = []
    # the 20 MasakhaNER 2.0 test sets do not ship (XFAST_TEST_DATA names a folder that has them)
    for path in sorted(full_data("masakhaner2/hau.test.txt").parent.glob("*.test.txt")):
        gold = [s.labels for s in read_conll(path)]
        pred = [[rng.choice(LABELS) if rng.random() < 0.1 else lab for lab in s] for s in gold]
        out.append((gold, pred))
    return out


def _seqeval_all(corpora):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for gold, pred in corpora:
            seqeval.classification_report(gold, pred, output_dict=True, zero_division=0)
            seqeval.accuracy_score(gold, pred)


def _xfast_all(corpora):
    for gold, pred in corpora:
        scores(gold, pred)


def _best(fn, arg, rounds):
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - t)
    return best


def test_evaluate_vs_seqeval(benchmark):
    corpora = _corpora()
    n_tok = sum(len(s) for g, _ in corpora for s in g)
    base = _best(_seqeval_all, corpora, 2)
    benchmark.pedantic(_xfast_all, args=(corpora,), rounds=5, iterations=1)
    fast = benchmark.stats.stats.min
    ratio = base / fast
    benchmark.extra_info.update(seqeval_s=base, xfast_s=fast, ratio=ratio, tokens=n_tok)
    print(f"\nMasakhaNER x20 ({n_tok} tokens): seqeval {base:.3f} s, xfast {fast:.4f} s, {ratio:.1f}x")
    assert ratio >= 20
