"""The GPU path in figures (issue 15). ``benchmarks/gpu.sh`` runs it in a fresh virtualenv;
alone: ``python benchmarks/bench_gpu.py``.

With ONNX Runtime's CUDA provider (a GPU and ``xfast[gpu]``), on the Europarl-NER en->de test
pairs repeated to ``XFAST_GPU_PAIRS`` (default 50,000):

1. ``xfast project`` end to end (heuristic + n-gram greedy), e5-small and an mBERT-shaped
   encoder (random weights, 12 layers 768 wide, cut after layer 8), float32 and float16:
   pairs/s, and the share of the wall time the model was busy (``run.json``);
2. the encoder alone: subword tokens/s;
3. float16 against float32 on the three Europarl-NER test sets (799 pairs each): the share of
   identical alignment pairs and the F1 of heuristic and n-gram greedy projection;
4. an NLLB-600M-shaped translator (random weights) on CTranslate2: generated tokens/s.

Without a GPU it says so and runs the CPU parts at sizes that finish in minutes: part 1 with
e5-small float32 on ``XFAST_CPU_PAIRS`` (default 2,000), part 2, part 3 on the German test set
(float16 runs on the CPU too, slowly), part 4 in int8 on 8 sentences. Every figure is printed
with the device it came from.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(__file__).resolve().parents[1] / "xfast" / "data" / "europarl"  # the shipped test sets
sys.path.insert(0, str(HERE))


def _gpu() -> str | None:
    """The GPU's name when ONNX Runtime can use it, else None."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out.splitlines()[0] if out else "CUDA device"


def _cpu() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = (re.search(r"model name\s*:\s*(.*)", info) or re.search("", "")).group(0).split(":")[-1].strip()
    flags = set((re.search(r"flags\s*:\s*(.*)", info) or re.search("", "")).group(0).split())
    simd = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni") if f in flags)
    return f"{model or 'CPU'} x{os.cpu_count()} ({simd or 'no AVX2'}), load {os.getloadavg()[0]:.2f}"


def _corpus(d: Path, pairs: int) -> tuple[Path, Path]:
    out = []
    for lang in ("en", "de"):
        blocks = [b for b in (DATA / f"{lang}.conll").read_text(encoding="utf-8").split("\n\n")
                  if b.strip() and not b.startswith("-DOCSTART-")]
        path = d / f"{lang}.{pairs}.conll"
        path.write_text("\n\n".join((blocks * (-(-pairs // len(blocks))))[:pairs]) + "\n\n", encoding="utf-8")
        out.append(path)
    return out[0], out[1]


def project_rate(tmp: Path, aligner: list[str], pairs: int, device: str, quantize: str | None) -> dict:
    """``xfast project`` as a user runs it: pairs/s and the model's busy share."""
    en, de = _corpus(tmp, pairs)
    out = tmp / f"out-{len(list(tmp.iterdir()))}"
    cmd = [sys.executable, "-m", "xfast", "project", "--labeled", str(en), "--receiving", f"de={de}", "--out",
           str(out), "--aligner", *aligner, "--device", device, "--method", "heuristic", "ngram-greedy",
           "--quiet", "--batch-size", "4096" if device == "cuda" else "512"]
    if quantize:
        cmd += ["--quantize", quantize]
    t = time.perf_counter()
    got = subprocess.run(cmd, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if got.returncode:
        raise SystemExit(f"bench_gpu: xfast project failed:\n{got.stderr[-2000:]}")
    run = json.loads((out / "run.json").read_text())
    return {"pairs/s": pairs / wall, "busy": run["model_busy_share"], "wall": wall,
            "host_s": sum(v for k, v in run["timings_s"].items() if k not in ("encode", "wait for model"))}


def encoder_rate(model: str, device: str, quantize: str | None, pairs: int = 2000) -> float:
    """The encoder alone on Europarl sentences: subword tokens per second."""
    from xfast.io import read_conll
    from xfast.models.encoder import Encoder, providers_for

    sents = [s.tokens for s in read_conll(DATA / "en.conll")]
    sents = (sents * (-(-pairs // len(sents))))[:pairs]
    enc = Encoder(model, quantize=quantize, providers=providers_for(device))
    enc.encode(sents[:64])
    t = time.perf_counter()
    out = enc.encode(sents)
    return sum(len(e.word_ids) for e in out) / (time.perf_counter() - t)


def fp16_agreement(device: str, langs: tuple[str, ...]) -> list[dict]:
    """float16 against float32 on the Europarl-NER test sets: identical pairs and F1."""
    from xfast.aligner import Aligner
    from xfast.evaluate import scores
    from xfast.io import entities_of, read_conll
    from xfast.models.encoder import providers_for
    from xfast.project import heuristic_batch, match_batch, ngram_candidates_batch

    prov = providers_for(device)
    a32, a16 = Aligner(providers=prov), Aligner(quantize="float16", providers=prov)
    en = list(read_conll(DATA / "en.conll"))
    rows = []
    for lang in langs:
        tgt = list(read_conll(DATA / f"{lang}.conll"))
        lab, rec = [s.tokens for s in en], [s.tokens for s in tgt]
        gold = [s.labels for s in tgt]
        ents = [entities_of(s.labels) for s in en]
        n = [len(w) for w in rec]
        row = {"lang": lang}
        alns = {}
        for name, al in (("fp32", a32), ("fp16", a16)):
            alns[name] = al.align_batch(lab, rec)
            row[f"{name} heuristic F1"] = scores(gold, heuristic_batch(ents, alns[name], n))["overall_f1"]
            row[f"{name} n-gram F1"] = scores(gold, match_batch(ents, ngram_candidates_batch(rec), alns[name],
                                                                n))["overall_f1"]
        same = sum(len({tuple(p) for p in x} & {tuple(p) for p in y}) for x, y in zip(alns["fp32"], alns["fp16"]))
        union = sum(len({tuple(p) for p in x} | {tuple(p) for p in y}) for x, y in zip(alns["fp32"], alns["fp16"]))
        row["identical pairs"] = same / max(1, union)
        rows.append(row)
    return rows


def translator_rate(device: str, compute_type: str, sentences: int) -> float:
    """An NLLB-600M-shaped model (random weights) on CTranslate2: generated tokens/s."""
    import shutil

    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    from bench_translator import NLLB_600M
    from xfast.io import read_conll
    from xfast.models.cache import atomic_dir, cache_dir
    from xfast.testing.tiny import ensure_tiny
    from xfast.models.translator import Translator, export_translator

    hf = cache_dir() / "bench" / "nllb-600m-shape-random-v1"
    if not (hf / "model.safetensors").is_file():
        tiny = ensure_tiny(progress=False)["nllb"]
        with atomic_dir(hf) as tmp:
            for f in ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model"):
                shutil.copy2(tiny / f, tmp / f)
            torch.manual_seed(0)
            M2M100ForConditionalGeneration(M2M100Config(**NLLB_600M)).eval().save_pretrained(str(tmp))
    ct2 = export_translator(hf, quantization="int8" if device == "cpu" else "float16")
    texts = [" ".join(s.tokens) for s in read_conll(DATA / "en.conll")][:sentences]
    tr = Translator(ct2, device=device, compute_type=compute_type, max_decoding_length=48)
    tr.translate(texts[:2], "en", "de")
    before = tr.stats.as_dict()["target_tokens"]
    t = time.perf_counter()
    tr.translate(texts, "en", "de")
    return (tr.stats.as_dict()["target_tokens"] - before) / (time.perf_counter() - t)


def main() -> int:
    from _random_models import mbert_shape

    gpu = _gpu()
    device = "cuda" if gpu else "cpu"
    print(f"xfast GPU benchmark: {gpu or 'no GPU found (ONNX Runtime has no CUDA provider): running the CPU parts'}")
    print(f"host: {_cpu()}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        pairs = int(os.environ.get("XFAST_GPU_PAIRS" if gpu else "XFAST_CPU_PAIRS", "50000" if gpu else "2000"))
        print(f"\n1. xfast project end to end, {pairs:,} Europarl en->de pairs, heuristic + n-gram greedy, {device}")
        print(f"{'encoder':<12}{'dtype':<9}{'pairs/s':>10}{'model busy':>12}{'host s':>9}")
        runs = [("e5-small", ["e5-small"], None)]
        if gpu:
            mbert = mbert_shape(tmp / "mbert")
            runs = [("e5-small", ["e5-small"], None), ("e5-small", ["e5-small"], "float16"),
                    ("mBERT shape", [str(mbert), "--layer", "8"], None),
                    ("mBERT shape", [str(mbert), "--layer", "8"], "float16")]
        for name, aligner, q in runs:
            r = project_rate(tmp, aligner, pairs, device, q)
            print(f"{name:<12}{q or 'float32':<9}{r['pairs/s']:>10,.0f}{r['busy']:>12.0%}{r['host_s']:>9.1f}")
        if not gpu:
            print("(mBERT shape and float16 end to end: GPU only)")
        print(f"\n2. encoder alone, e5-small, {device}")
        for q in ([None, "float16"] if gpu else [None]):
            print(f"{q or 'float32':<9}{encoder_rate('e5-small', device, q):>12,.0f} subword tokens/s")
        langs = ("de", "es", "it") if gpu else ("de",)
        print(f"\n3. float16 against float32, e5-small, Europarl-NER test sets, {device}")
        for row in fp16_agreement(device, langs):
            print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        ct = "float16" if gpu else "int8"
        n = 256 if gpu else 8
        print(f"\n4. NLLB-600M shape (random weights), CTranslate2 {ct}, {n} sentences, {device}: "
              f"{translator_rate(device, ct, n):,.0f} generated tokens/s")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
