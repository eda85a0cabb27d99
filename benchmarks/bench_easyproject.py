"""EasyProject back-translation: all entities of a batch in one translate call vs the
reference's one call per sentence (issue 7).

Run: ``python -m pytest benchmarks/bench_easyproject.py -s`` (or ``python
benchmarks/bench_easyproject.py``). Data: the 799 English Europarl-NER test sentences with
their gold entities, in batches of 32 as the reference runs them. The translate callable is
a stand-in with a fixed cost per call (model dispatch, padding, device sync) plus a cost per
text; it copies its input, so the matched output is real. Both drivers run in this process
on the same data and must give identical words and entities (quality); the ratio is of the
best of several rounds each. Overheads are parameters: the ratio grows with the per-call
cost and with the number of entities per batch.
"""

from __future__ import annotations

import time
from pathlib import Path


from xfast.io import read_conll
from xfast.text.easyproject import (
    ENTITY_MAX_LENGTH,
    SENTENCE_MAX_LENGTH,
    back_translate_batch,
    entity_texts,
    mark,
    match_brackets,
)

DATA = Path(__file__).resolve().parents[1] / "xfast" / "data" / "europarl" / "en.conll"  # shipped
BATCH = 32
PER_CALL_S = 0.004  # a CTranslate2/HF generate call's fixed cost on a GPU, order of magnitude
PER_TEXT_S = 0.0002


class CostlyCopy:
    """translate(texts, max_length) -> texts, sleeping PER_CALL_S + PER_TEXT_S * len(texts)."""

    def __init__(self, per_call: float = PER_CALL_S, per_text: float = PER_TEXT_S):
        self.per_call, self.per_text, self.calls = per_call, per_text, 0

    def __call__(self, texts: list[str], max_length: int) -> list[str]:
        self.calls += 1
        time.sleep(self.per_call + self.per_text * len(texts))
        return list(texts)


def _entities(labels: list[str]) -> list[tuple[int, int, str]]:
    out, start, kind = [], None, None
    for i, lab in enumerate([*labels, "O"]):
        if start is not None and not (lab.startswith("I-") and lab[2:] == kind):
            out.append((start, i, kind))
            start = None
        if lab.startswith("B-") or (lab.startswith("I-") and start is None):
            start, kind = i, lab[2:]
    return out


def load() -> tuple[list[list[str]], list[list[tuple[int, int, str]]]]:
    sents = list(read_conll(DATA))
    return [s.tokens for s in sents], [_entities(s.labels) for s in sents]


def xfast_run(sentences, entities, translate):
    out = []
    for i in range(0, len(sentences), BATCH):
        out += back_translate_batch(sentences[i : i + BATCH], entities[i : i + BATCH], translate, lang="en")
    return out


def per_sentence_run(sentences, entities, translate):
    """The reference's call pattern: one call for a batch's marked sentences, then one
    call per sentence (that has entities) for its entity texts."""
    out = []
    for i in range(0, len(sentences), BATCH):
        words_b, ents_b = sentences[i : i + BATCH], entities[i : i + BATCH]
        translations = translate([mark(w, e) for w, e in zip(words_b, ents_b)], SENTENCE_MAX_LENGTH)
        for tr, w, e in zip(translations, words_b, ents_b):
            texts = entity_texts(w, e)
            ent_tr = translate(texts, ENTITY_MAX_LENGTH) if texts else []
            out.append(match_brackets(tr, ent_tr, [lab for *_, lab in e], lang="en"))
    return out


def _best(fn, args, rounds):
    best, result = float("inf"), None
    for _ in range(rounds):
        t = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, result


def measure(rounds: int = 3) -> dict:
    sentences, entities = load()
    base_t, base_out = _best(per_sentence_run, (sentences, entities, CostlyCopy()), rounds)
    fast_t, fast_out = _best(xfast_run, (sentences, entities, CostlyCopy()), rounds)
    nocost_t, _ = _best(xfast_run, (sentences, entities, CostlyCopy(0.0, 0.0)), rounds)
    calls_base, calls_fast = CostlyCopy(), CostlyCopy()
    per_sentence_run(sentences, entities, calls_base)
    xfast_run(sentences, entities, calls_fast)
    return {
        "sentences": len(sentences),
        "entities": sum(map(len, entities)),
        "per_sentence_s": base_t,
        "batched_s": fast_t,
        "ratio": base_t / fast_t,
        "calls_per_sentence": calls_base.calls,
        "calls_batched": calls_fast.calls,
        "matching_only_s": nocost_t,
        "identical": base_out == fast_out,
    }


def report(r: dict) -> str:
    return (
        f"\nEasyProject back-translation, Europarl en ({r['sentences']} sentences, {r['entities']} entities,"
        f" batch {BATCH}, {PER_CALL_S * 1e3:.1f} ms/call + {PER_TEXT_S * 1e3:.2f} ms/text)\n"
        f"| driver | translate calls | seconds |\n|---|---|---|\n"
        f"| one entity call per sentence (reference) | {r['calls_per_sentence']} | {r['per_sentence_s']:.3f} |\n"
        f"| all entities of a batch in one call (xfast) | {r['calls_batched']} | {r['batched_s']:.3f} |\n"
        f"speed-up {r['ratio']:.2f}x; identical output: {r['identical']};"
        f" marking + matching alone {r['matching_only_s']:.3f} s"
    )


def test_easyproject_batched_vs_per_sentence():
    r = measure()
    print(report(r))
    assert r["identical"]


if __name__ == "__main__":
    print(report(measure()))
