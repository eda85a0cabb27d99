"""``xfast demo``: the main job on the embedded default, offline.

Projects the gold entities of the bundled Europarl-NER English test set onto German, Spanish
and Italian with the embedded e5-small aligner (layer 8, SimAlign itermax on subwords), with the
heuristic and the n-gram greedy projections, and prints F1 beside the paper's mBERT SimAlign
figures, plus the wall time of each stage. With ``out_dir`` the run folder is kept (outputs,
``metrics.csv`` with dataset ``europarl``, ``qa.json``), ready for ``xfast compare``.
"""

from __future__ import annotations

import json
import tempfile
import time
from importlib import resources
from pathlib import Path

from xfast.aligner import Aligner
from xfast.errors import ParameterError, msg
from xfast.io import read_conll, write_conll
from xfast.models.encoder import providers_for
from xfast.pipelines.parallel import project_parallel

__all__ = ["demo", "demo_data", "paper_f1", "DEMO_LANGS", "DEMO_METHODS"]

DEMO_LANGS = ("de", "es", "it")
DEMO_METHODS = ("heuristic", "ngram-greedy")


def demo_data(name: str) -> Path:
    """A file shipped in ``xfast/data`` (the Europarl-NER test sets, the paper's F1)."""
    return Path(str(resources.files("xfast") / "data" / name))


def paper_f1() -> dict:
    """The paper's overall F1 per aligner, language and method (shipped JSON)."""
    return json.loads(demo_data("paper_europarl.json").read_text(encoding="utf-8"))["overall_f1"]


def demo(*, quantize: str | None = None, limit: int | None = None, out_dir: str | Path | None = None,
         device: str = "auto", progress: bool = True, overwrite: bool = False, backend: str | None = None) -> dict:
    """Run the demo; return ``{"results": [...], "timings": {...}, "qa": {...}}``, plus
    ``"outputs"`` (file paths) when ``out_dir`` keeps the run folder (a temporary one otherwise);
    ``overwrite`` replaces another run's outputs there; ``backend``: the encoder's runtime
    (:class:`~xfast.aligner.Aligner`'s; None: torch on a CUDA GPU, else ONNX Runtime)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ParameterError(msg("E202", name="limit", expected="an int >= 1 (sentences to run on)", value=limit))
    t0 = time.perf_counter()
    aligner = Aligner("e5-small", quantize=quantize, providers=providers_for(device), backend=backend)
    load = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="xfast-demo-") as tmp:
        files = {lang: demo_data(f"europarl/{lang}.conll") for lang in ("en", *DEMO_LANGS)}
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


