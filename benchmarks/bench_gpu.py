"""The GPU path in figures, offline, in one process (issue 23). ``benchmarks/gpu.sh`` runs it;
alone: ``python benchmarks/bench_gpu.py`` (from the repository root, xfast importable).

Real weights cannot travel to a GPU machine without a network, so every model here has random
weights at a real shape, built from its config: multilingual-e5-small (cut at layer 8, its real
XLM-R tokenizer), mBERT-base (cut at layer 8, a WordPiece vocabulary built from Europarl) and
NLLB-600M (random but for one cross-attention head set to copy the source, so decoding emits
real lengths: benchmarks/_random_models.py). The compute is the real models'; the alignments
are not meaningful, so agreement figures compare two number formats of one model.

On a GPU (torch sees CUDA), with ``XFAST_GPU_PAIRS`` Europarl-shaped en->de pairs (the shipped
test sets repeated; default 50,000):

1. ``project`` end to end (heuristic + n-gram greedy; encoder on torch in float16, extraction on
   the device), e5-small and mBERT-base shapes: pairs/s, the model's busy share, and the bytes
   copied from the device per pair;
2. the encoder alone: subword tokens/s and its share of the GPU's dense float16 peak (FLOPs of
   the linear layers and attention, per token, over the peak of the GPU's datasheet);
3. float16 against float32 (e5-small shape) on the three Europarl-NER test sets: identical
   pairs and the F1 change of heuristic and n-gram projection; and two parity checks: float32
   states on the GPU against the CPU's, extraction on the GPU against the host kernels;
4. NLLB-600M shape on torch (transformers' ``generate``, float16, greedy): generated tokens/s.

Without a GPU it says so and runs the same parts on the CPU at sizes that finish in about a
minute (``XFAST_GPU_PAIRS`` default 200): the e5-small shape only, bfloat16 standing in for
float16, extraction on the device path with CPU tensors, a small NLLB shape. It prints one
table and writes it as JSON to ``$OUT/gpu.json`` when ``OUT`` is set. It reads and writes only
local files; nothing is downloaded (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "xfast" / "data" / "europarl"  # the shipped test sets
sys.path.insert(0, str(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("XFAST_QUIET", "1")

#: dense float16 tensor-core peaks (TFLOP/s) from the datasheets, by a word of the GPU's name
PEAKS = {"H200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "GH200": 989.4, "A100": 312.0, "L40S": 362.1,
         "L4": 121.0, "A10": 125.0, "V100": 125.0, "RTX 4090": 165.2}
GOALS = {"e5-small": 50_000, "mBERT-base": 15_000}  # issue 23's pairs/s on one H100
#: how the table names the random-weight models
_RANDOM = {"e5-small": "e5-small shape", "mBERT-base": "mBERT shape", "NLLB-600M": "NLLB-600M shape"}


def _gpu() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _host() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.*)", info)
    return f"{model.group(1).strip() if model else platform.processor() or 'CPU'} x{os.cpu_count()}"


def _peak(name: str | None) -> float | None:
    if not name:
        return None
    for key, value in PEAKS.items():
        if key in name:
            return value * 1e12
    return None


def _europarl(lang: str) -> list:
    from xfast.io import read_conll

    return list(read_conll(DATA / f"{lang}.conll"))


def _corpus(d: Path, pairs: int) -> tuple[Path, Path]:
    """``pairs`` Europarl-shaped en/de pairs: the test sets repeated, as CoNLL files."""
    out = []
    for lang in ("en", "de"):
        blocks = [b for b in (DATA / f"{lang}.conll").read_text(encoding="utf-8").split("\n\n")
                  if b.strip() and not b.startswith("-DOCSTART-")]
        path = d / f"{lang}.{pairs}.conll"
        path.write_text("\n\n".join((blocks * (-(-pairs // len(blocks))))[:pairs]) + "\n\n", encoding="utf-8")
        out.append(path)
    return out[0], out[1]


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


class Table:
    """Rows of (metric, model, value, unit, note), printed once and kept for the JSON."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, metric: str, model: str, value, unit: str = "", note: str = "") -> None:
        self.rows.append({"metric": metric, "model": model, "value": value, "unit": unit, "note": note})
        shown = f"{value:,.4g}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
        print(f"  {metric:<56} {model:<19} {shown:>12} {unit:<9} {note}", flush=True)


# ----------------------------------------------------------------------------- parts
def project_rate(tmp: Path, model: Path, name: str, pairs: int, device: str, precision: str | None,
                 table: Table) -> None:
    """``project`` end to end through its typed function, as ``xfast project`` runs it."""
    from xfast.aligner import Aligner
    from xfast.pipelines.parallel import project_parallel

    en, de = _corpus(tmp, pairs)
    aligner = Aligner(str(model), layer=8, backend="torch", device=device, quantize=precision,
                      extraction="device")
    words = [s.tokens for s in _europarl("en")[:64]], [s.tokens for s in _europarl("de")[:64]]
    aligner.align_batch(*words)  # warm: kernels chosen, memory pools grown
    before = aligner.device_stats["bytes_to_host"]
    out = tmp / f"out-{name}-{aligner.encoder.precision}"
    t = time.perf_counter()
    res = project_parallel(en, {"de": de}, out, aligner=aligner, methods=("heuristic", "ngram-greedy"),
                           batch_size=4096 if device == "cuda" else 256, progress=False, device=device)
    wall = time.perf_counter() - t
    rate = pairs / wall
    prec = aligner.encoder.precision
    goal = GOALS.get(name) if device == "cuda" and prec == "float16" else None
    name = _RANDOM[name]
    table.add(f"pairs/s end to end ({prec}, {pairs:,} pairs)", name, rate, "pairs/s",
              "" if goal is None else f"goal {goal:,}: {'met' if rate >= goal else 'MISSED'}")
    table.add("model busy share", name, float(res["run"]["model_busy_share"]), "of wall")
    d2h = (aligner.device_stats["bytes_to_host"] - before) / pairs
    table.add("device-to-host bytes per pair", name, d2h, "B/pair",
              "goal <= 1,000" + (": met" if d2h <= 1000 else ": MISSED") if device == "cuda" else "")


def encoder_rate(model: Path, name: str, sentences: list[list[str]], device: str, precision: str | None,
                 table: Table) -> None:
    """The encoder alone (states kept on the device): subword tokens/s and share of the peak."""
    import numpy as np

    from xfast.aligner import Aligner
    from xfast.io.tokens import from_sentences

    al = Aligner(str(model), layer=8, backend="torch", device=device, quantize=precision, extraction="device")
    enc = al.encoder
    sub = enc.subwords(from_sentences(sentences))
    enc.encode_subwords(enc.subwords(from_sentences(sentences[:256])), transform=al.state_transform)
    _sync(device)
    t = time.perf_counter()
    enc.encode_subwords(sub, transform=al.state_transform)
    _sync(device)
    dt = time.perf_counter() - t
    lengths = np.diff(sub.offsets) + len(enc._prefix) + len(enc._suffix)
    tokens = int(lengths.sum())
    cfg = json.loads((Path(enc.model_dir) / "config.json").read_text())
    h, ffn = cfg["hidden_size"], cfg["intermediate_size"]
    mean_len = float((lengths.astype(np.float64) ** 2).sum() / max(tokens, 1))  # per token, the keys it sees
    flops = enc.layer * (2 * (4 * h * h + 2 * h * ffn) + 4 * h * mean_len)
    name = _RANDOM[name]
    table.add(f"encoder tokens/s ({enc.precision}, {enc._run.attention})", name, tokens / dt, "tokens/s")
    peak = _peak(_gpu()) if device == "cuda" else None
    if peak:
        table.add("encoder share of the float16 peak", name, tokens / dt * flops / peak, "of peak",
                  f"{flops / 1e9:.3f} GFLOP/token, peak {peak / 1e12:.0f} TFLOP/s")


def agreement(model: Path, langs: tuple[str, ...], limit: int, device: str, low: str, table: Table) -> None:
    """``low`` (float16, or bfloat16 on a CPU) against float32, same device and model:
    identical pairs and F1; and two parity checks of the GPU path. The real e5-small where its
    weights are here (the registry resolves it offline), else ``model``."""
    from xfast.errors import ModelError
    from xfast.models.registry import resolve

    try:
        model, name = resolve("e5-small", kind="encoder", progress=False), "e5-small"
    except ModelError:
        name = _RANDOM["e5-small"]
    import numpy as np

    from xfast.aligner import Aligner
    from xfast.evaluate import scores
    from xfast.io import entities_of
    from xfast.project import heuristic_batch, match_batch, ngram_candidates_batch

    def aligner(q, extraction="device", dev=device):
        return Aligner(str(model), layer=8, backend="torch", device=dev, quantize=q, extraction=extraction)

    hi, lo = aligner("float32"), aligner(low)
    en = _europarl("en")[:limit]
    for lang in langs:
        rec = _europarl(lang)[:limit]
        lab_w, rec_w = [s.tokens for s in en], [s.tokens for s in rec]
        ents, gold, n = [entities_of(s.labels) for s in en], [s.labels for s in rec], [len(s.tokens) for s in rec]
        cands = ngram_candidates_batch(rec_w)
        f1 = {}
        alns = {}
        for key, al in (("float32", hi), (low, lo)):
            alns[key] = al.align_batch(lab_w, rec_w)
            f1[key] = (scores(gold, heuristic_batch(ents, alns[key], n))["overall_f1"],
                       scores(gold, match_batch(ents, cands, alns[key], n))["overall_f1"])
        table.add(f"{low} vs float32 identical pairs ({lang}, {len(en)})", name, _iou(alns["float32"], alns[low]))
        table.add(f"{low} vs float32 F1 change, heuristic / n-gram ({lang})", name,
                  f"{100 * (f1[low][0] - f1['float32'][0]):+.2f} / {100 * (f1[low][1] - f1['float32'][1]):+.2f}",
                  "points")
    # parity: the GPU's float32 states against the CPU's; extraction on the device against the host
    words = [s.tokens for s in en[:64]]
    here = hi.encode(words)
    if device == "cuda":
        cpu = aligner("float32", "host", "cpu").encode(words)
        table.add("float32 states, GPU vs CPU, max |diff|", name,
                  max(float(np.abs(a.states - b.states).max()) for a, b in zip(here, cpu)))
    host = aligner("float32", "host")
    rec_w = [s.tokens for s in _europarl(langs[0])[:limit]]
    table.add(f"device vs host extraction identical pairs ({langs[0]})", name,
              _iou(hi.align_batch([s.tokens for s in en], rec_w), host.align_batch([s.tokens for s in en], rec_w)))


def _iou(a, b) -> float:
    same = union = 0
    for x, y in zip(a, b):
        sx, sy = set(map(tuple, x.tolist())), set(map(tuple, y.tolist()))
        same += len(sx & sy)
        union += len(sx | sy)
    return same / max(union, 1)


def translator_rate(tmp: Path, device: str, sentences: int, table: Table) -> None:
    """NLLB-600M shape (a small one on a CPU) on torch, greedy: generated tokens/s."""
    from _random_models import copy_nllb
    from xfast.models.translator import Translator

    # a CPU gets a narrow one (the copy head needs 64 dimensions per head)
    small = {} if device == "cuda" else dict(d_model=256, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=512,
                                             decoder_ffn_dim=512, encoder_attention_heads=4,
                                             decoder_attention_heads=4)
    name = _RANDOM["NLLB-600M"] if device == "cuda" else "NLLB shape (narrow)"
    model = copy_nllb(tmp / "nllb", **small)
    texts = [" ".join(s.tokens) for s in _europarl("en")][:sentences]
    tr = Translator(model, backend="torch", device=device, max_decoding_length=128,
                    max_batch_tokens=16384 if device == "cuda" else 4096)
    tr.translate(texts[:4], "en", "de")
    before = tr.stats.target_tokens
    _sync(device)
    t = time.perf_counter()
    tr.translate(texts, "en", "de")
    _sync(device)
    table.add(f"generated tokens/s (torch {tr.compute_type}, greedy, {len(texts)} sentences)", name,
              (tr.stats.target_tokens - before) / (time.perf_counter() - t), "tokens/s")


# ----------------------------------------------------------------------------- main
def main() -> int:
    import torch
    from transformers.utils import logging as tf_logging

    from _random_models import e5_small_shape, mbert_shape

    tf_logging.disable_progress_bar()  # one table, not progress bars
    tf_logging.set_verbosity_error()
    gpu = _gpu()
    device = "cuda" if gpu else "cpu"
    t0 = time.perf_counter()
    print(f"xfast GPU check: {gpu or 'no GPU found (torch sees no CUDA device): running the CPU parts'}")
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), python {platform.python_version()}, host "
          f"{_host()}", flush=True)
    pairs = int(os.environ.get("XFAST_GPU_PAIRS", "50000" if gpu else "200"))
    table = Table()
    print(f"\n  {'metric':<56} {'model':<19} {'value':>12} {'unit':<9} note")
    with tempfile.TemporaryDirectory(prefix="xfast-gpu-") as d:
        tmp = Path(d)
        e5 = e5_small_shape(tmp / "e5-small")
        project_rate(tmp, e5, "e5-small", pairs, device, None, table)
        if gpu:
            mbert = mbert_shape(tmp / "mbert")
            project_rate(tmp, mbert, "mBERT-base", pairs, device, None, table)
        sents = [s.tokens for s in _europarl("en") + _europarl("de")]
        sents = (sents * (-(-2 * pairs // len(sents))))[:2 * pairs] if gpu else sents[:2 * min(pairs, 200)]
        encoder_rate(e5, "e5-small", sents, device, None, table)
        if gpu:
            encoder_rate(mbert, "mBERT-base", sents, device, None, table)
            agreement(e5, ("de", "es", "it"), 799, device, "float16", table)
        else:
            agreement(e5, ("de",), min(pairs, 200), device, "bfloat16", table)
        translator_rate(tmp, device, 1024 if gpu else 8, table)
    seconds = time.perf_counter() - t0
    print(f"\ndone in {seconds:.0f} s on {gpu or 'the CPU'}")
    if os.environ.get("OUT"):
        out = Path(os.environ["OUT"]) / "gpu.json"
        out.write_text(json.dumps({"device": gpu or "cpu", "torch": torch.__version__, "cuda": torch.version.cuda,
                                   "python": platform.python_version(), "host": _host(), "pairs": pairs,
                                   "seconds": round(seconds, 1), "rows": table.rows}, indent=1) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
