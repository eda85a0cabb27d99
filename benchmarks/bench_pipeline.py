"""The whole translate-test pipeline at real model shapes: time per stage and the share that is
not model inference (issue 7; goal < 10%).

Run: ``python -m pytest benchmarks/bench_pipeline.py -s`` (``XFAST_BENCH_SENTENCES``: how many
MasakhaNER Hausa test sentences, default 500; ``XFAST_BENCH_THREADS``: default 2).

Models (:mod:`_random_models`): random weights at real shapes, so the compute is real:
NLLB-200-distilled-600M on CTranslate2 int8 (the translator, and also standing in for the
EasyProject 3.3B marker translator), built so that its greedy output copies the source
(a random NLLB emits only dropped special tokens and never EOS, which leaves every later stage
idle); XLM-R large with a 9-label token-classification head whose ``O`` bias gives about as
many entities as the gold data; and the embedded e5-small aligner (real weights, the CLI
default). Both translator and tagger use the real XLM-R SentencePiece vocabulary (NLLB's
tokenizes Hausa about as finely), not the tiny tokenizers. The run: src2tgt and tgt2tgt,
align methods itermax and softmax, projection heuristic, ngram-greedy and ner-greedy, plus
the model-transfer baseline: every stage. The test checks that each stage did work
(translations non-empty, English and back-translated entities, alignment pairs, projected
labels). Model inference = the ``*.model`` timings (translator, tagger and encoder calls);
model loading is reported apart; everything else (reading, detokenizing, splitting,
EasyProject matching, cache writes, extraction, projection, writing, scoring) is the overhead.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ctranslate2")

from xfast.io import read_conll, write_conll  # noqa: E402
from xfast.models.cache import cache_dir  # noqa: E402
from xfast.models.translator import Translator  # noqa: E402
from xfast.pipelines.translate_test import translate_test  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _random_models import copy_nllb, random_xlmr_tagger  # noqa: E402

from tests._pipeline_helpers import full_data  # noqa: E402 - MasakhaNER does not ship

N_SENTENCES = int(os.environ.get("XFAST_BENCH_SENTENCES", "500"))
THREADS = int(os.environ.get("XFAST_BENCH_THREADS", "2"))


def _tagger_labels(tiny_ner: Path) -> dict[int, str]:
    import json

    return {int(k): v for k, v in json.loads((tiny_ner / "config.json").read_text())["id2label"].items()}


@pytest.fixture(scope="module")
def setup(tiny_models, tmp_path_factory):
    from xfast.aligner import Aligner
    from xfast.models.tagger import Tagger, export_tagger
    from xfast.models.translator import export_translator

    t0 = time.perf_counter()
    bench = cache_dir() / "bench"
    translator = Translator(export_translator(copy_nllb(bench / "nllb-600m-shape-copy-v3"), quantization="int8"),
                            threads=THREADS)
    tagger = Tagger(export_tagger(random_xlmr_tagger(bench / "xlmr-large-ner-shape-random-xlmrtok-v3",
                                                     _tagger_labels(tiny_models["ner"]))), threads=THREADS)
    aligner = Aligner("e5-small", threads=THREADS)
    data = tmp_path_factory.mktemp("bench") / "hau.conll"
    write_conll(data, (s for _, s in zip(range(N_SENTENCES), read_conll(full_data("masakhaner2/hau.test.txt")))))
    print(f"\n[setup] models ready in {time.perf_counter() - t0:.0f}s")
    return translator, tagger, aligner, data


def test_translate_test_stage_times(setup, tmp_path):
    from xfast.report import format_table

    translator, tagger, aligner, data = setup
    res = translate_test(data, "hau", tmp_path / "out", modes=("src2tgt", "tgt2tgt"),
                         methods=("heuristic", "ngram-greedy", "ner-greedy"), align_methods=("itermax", "softmax"),
                         translator=translator, easyproject_translator=translator, ner_model=tagger,
                         aligner=aligner, baseline=True, dataset="masakhaner2", progress=False)
    t = res["timings"]
    total = t["total"]
    load = sum(v for k, v in t.items() if k.startswith("load "))
    infer = sum(v for k, v in t.items() if k.endswith(".model"))
    other = total - load - infer
    n = res["qa"]["sentences"]["in"]
    rows = [[k, float(v), 100.0 * v / total] for k, v in t.items() if k != "total"]
    print(f"\ntranslate-test, {n} MasakhaNER hau sentences, {THREADS} threads, load average "
          f"{os.getloadavg()[0]:.2f}:")
    print(format_table(["stage", "seconds", "% of total"], rows))
    print(f"total {total:.1f}s ({total / n:.3f}s per sentence); model inference {infer:.1f}s; loading {load:.1f}s; "
          f"not inference {other:.1f}s = {100 * other / (total - load):.2f}% of the run without loading")
    qa = res["qa"]
    work = _work_done(res, tmp_path / "out" / "cache", n)
    print(f"translator: {qa['translator']}")
    print(f"EasyProject: {qa.get('easyproject')}; its translator: {qa.get('easyproject_translator')}")
    print(f"work done: {work}; failed sentences: {qa['sentences']['failed']} {qa['sentences']['failed_by_reason']}")
    assert qa["sentences"]["out"] == n
    # every stage had real work: translations, English entities, back-translated entities,
    # alignment pairs and projected entities in both modes
    assert qa["translator"]["empty"] == 0 and qa["translator"]["target_tokens"] > 0
    assert all(v > 0 for v in work.values()), work


def _work_done(res: dict, cache: Path, n: int) -> dict[str, int]:
    """Counts showing each stage worked: entities tagged in the English MT, entities carried
    by the back-translation, alignment pairs per (mode, method), projected entities per output."""
    import json

    qa = res["qa"]
    work: dict[str, int] = {}
    for key, counts in qa["entities"].items():
        work[f"entities in {key}"] = sum(v for k, v in counts.items() if k.endswith(":in"))
    work["EasyProject matched"] = qa["easyproject"]["matched"]
    for name, path in res["outputs"].items():
        if path.endswith(".conll"):
            work[f"B- labels in {name}"] = sum(lab.startswith("B-") for s in read_conll(path) for lab in s.labels)
    pairs: dict[str, int] = {}
    for f in sorted(cache.glob("align/*/shard-*.jsonl")):
        with f.open() as fh:
            next(fh)  # the shard header
            pairs[f.parent.name[:8]] = pairs.get(f.parent.name[:8], 0) + sum(len(json.loads(r)["pairs"]) for r in fh)
    work.update({f"align pairs {k}": v for k, v in pairs.items()})
    return work
