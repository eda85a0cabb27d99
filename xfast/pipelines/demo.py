"""``xfast demo``: the main job on the embedded default, offline.

Projects the gold entities of the bundled Europarl-NER English test set onto German, Spanish
and Italian with the embedded e5-small aligner (layer 8, SimAlign itermax on subwords), with the
heuristic and the n-gram greedy projections, and prints F1 beside the paper's mBERT SimAlign
figures, plus the wall time of each stage. With ``out_dir`` the run folder is kept (outputs,
``metrics.csv`` with dataset ``europarl``, ``qa.json``), ready for ``xfast compare``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from xfast.errors import ParameterError, msg

__all__ = ["run_demo", "DEMO_LANGS", "DEMO_METHODS"]

DEMO_LANGS = ("de", "es", "it")
DEMO_METHODS = ("heuristic", "ngram-greedy")


def _data(name: str) -> Path:
    return Path(str(resources.files("xfast") / "data" / name))


def paper_f1() -> dict:
    """The paper's overall F1 per aligner, language and method (shipped JSON)."""
    return json.loads(_data("paper_europarl.json").read_text(encoding="utf-8"))["overall_f1"]


def demo(*, quantize: str | None = None, limit: int | None = None, out_dir: str | Path | None = None,
         device: str = "auto", progress: bool = True, overwrite: bool = False) -> dict:
    """Run the demo; return ``{"results": [...], "timings": {...}, "qa": {...}}``, plus
    ``"outputs"`` (file paths) when ``out_dir`` keeps the run folder (a temporary one otherwise);
    ``overwrite`` replaces another run's outputs there."""
    from xfast.aligner import Aligner
    from xfast.io import read_conll, write_conll
    from xfast.pipelines.parallel import project_parallel

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ParameterError(msg("E202", name="limit", expected="an int >= 1 (sentences to run on)", value=limit))
    t0 = time.perf_counter()
    from xfast.models.encoder import providers_for

    aligner = Aligner("e5-small", quantize=quantize, providers=providers_for(device))
    load = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="xfast-demo-") as tmp:
        files = {lang: _data(f"europarl/{lang}.conll") for lang in ("en", *DEMO_LANGS)}
        if limit is not None:  # a prefix of every side, still parallel
            for lang, path in list(files.items()):
                files[lang] = Path(tmp) / f"{lang}.conll"
                write_conll(files[lang], (s for i, s in zip(range(limit), read_conll(path))))
        res = project_parallel(files["en"], {lang: files[lang] for lang in DEMO_LANGS},
                               out_dir or Path(tmp) / "out", aligner=aligner, methods=DEMO_METHODS,
                               progress=progress, overwrite=overwrite, dataset="europarl")
    paper = paper_f1()["simalign"]
    for row in res["results"]:
        row["paper_mbert_f1"] = paper[row["lang"]][row["method"]]
    timings = {"load aligner": load, **res["timings"], "total": time.perf_counter() - t0}
    kept = {"outputs": res["outputs"]} if out_dir is not None else {}
    return {"results": res["results"], "timings": timings, "qa": res["qa"], **kept}


def run_demo(*, json_out: bool = False, quantize: str | None = None, limit: int | None = None,
             quiet: bool = False, device: str = "auto", out_dir: str | Path | None = None,
             overwrite: bool = False) -> int:
    """The ``xfast demo`` command: print the table (or one JSON object); return the exit code."""
    from xfast.io.columns import count_sentences
    from xfast.report import format_table

    res = demo(quantize=quantize, limit=limit, progress=not (json_out or quiet), device=device, out_dir=out_dir,
               overwrite=overwrite)
    failed = res["qa"]["sentences"]["failed"]
    if json_out:
        print(json.dumps(res))
        return 1 if failed else 0
    rows = [[r["lang"], r["method"], r["overall_precision"], r["overall_recall"], r["overall_f1"],
             r["paper_mbert_f1"]] for r in res["results"]]
    n = res["qa"]["sentences"]["in"]
    total = count_sentences(_data("europarl/en.conll"))
    part = f"{n} of its {total} sentences: the paper's F1 is over all of them" if n < total else f"{n} sentences"
    print(f"\nEuroparl-NER test ({part}), English gold entities projected with the embedded "
          "e5-small aligner (layer 8, itermax, subwords)" + (", int8 encoder" if quantize else "") + ":\n")
    print(format_table(["lang", "method", "precision", "recall", "f1", "paper mBERT f1"], rows))
    print("\nwall time per stage (s):")
    print(format_table(["stage", "seconds"], [[k, float(v)] for k, v in res["timings"].items()]))
    if out_dir is not None:
        print(f"\nrun folder: {out_dir} (metrics.csv, qa.json, the projected files); set it beside the paper "
              "with: xfast compare " + f"{out_dir} --reference europarlner_metrics.csv --out DIR")
    if failed:
        print(f"\n{failed} sentences failed: see the QA summary", file=sys.stderr)
    return 1 if failed else 0
