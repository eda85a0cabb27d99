"""Peak memory of the NLLB pipelines as the corpus grows (issue 24, item 2: streaming).

Each of translate-test (src2tgt and tgt2tgt with the model-transfer baseline), translate-train
(plain, and marker) and model-transfer runs through the CLI in a fresh Python process on the
tiny random models (:func:`xfast.testing.tiny.ensure_tiny`), once on 800 and once on 8,000
sentences: the shipped MasakhaNER-layout Hausa stand-in (translate-test, model-transfer) or the
Europarl-NER English test set (translate-train), repeated to length in blocks of whole shards
(:func:`corpus`). Every run starts with an
empty stage cache, so every stage is computed. The child reports its peak resident set
(``VmHWM`` in ``/proc/self/status``); the figure of merit is the growth per sentence between the two sizes,
``(peak(8000) - peak(800)) / 7200`` KiB: what a corpus a thousand times larger would add.
Target: at most 0.5 KiB per sentence for every pipeline (``XFAST_BENCH_KIB_PER_SENT``). The
CoNLL reader parses 1 MiB blocks, which an 800-sentence input (78-173 KB) does not fill and an
8,000-sentence one does: that bounded block counts as growth between 800 and 8,000;
``XFAST_BENCH_SIZES=8000,24000`` measures beyond it (benchmarks/README.md has both).

Run: ``python -m pytest benchmarks/bench_memory.py -s`` (about 10 minutes on 2 cores), or
``python benchmarks/bench_memory.py``; ``XFAST_BENCH_SIZES=800,8000`` sets the sizes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = tuple(int(x) for x in os.environ.get("XFAST_BENCH_SIZES", "800,8000").split(","))
BLOCK = 768
TARGET_KIB = float(os.environ.get("XFAST_BENCH_KIB_PER_SENT", "0.5"))
SOURCES = {"hau": ROOT / "tests" / "data" / "masakhaner2" / "hau.conll",
           "en": ROOT / "xfast" / "data" / "europarl" / "en.conll"}

#: the child: run the CLI, then print its peak RSS in KiB: VmHWM, the high-water mark of this
#: process's own memory (ru_maxrss would count the parent's RSS at fork time too)
CHILD = ("import re, sys; from xfast.cli import main; rc = main(sys.argv[1:]); "
         "print('PEAK_KIB', re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1)); sys.exit(rc)")


def cpu_line() -> str:
    """CPU model, the SIMD flags that matter here, and the load average."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.*)", info)
    flags = re.search(r"flags\s*:\s*(.*)", info)
    have = set(flags.group(1).split()) if flags else set()
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512vl", "avx512_vnni", "avx_vnni") if f in have]
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return f"{model.group(1) if model else '?'}; flags: {' '.join(simd)}; load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def corpus(lang: str, n: int, folder: Path) -> Path:
    """``n`` sentences of the source of ``lang``, as CoNLL: its sentences cycled into a block of
    :data:`BLOCK` (three default shards), and that block repeated. Every shard of a larger run
    then holds the same sentences as one of the smaller run's, so both see the same batch
    shapes: a model's buffers grow to the largest batch it has seen, once, and which sentences
    share a batch would otherwise decide a step that has nothing to do with the corpus length."""
    from xfast.io import read_conll, write_conll

    sents = list(read_conll(SOURCES[lang]))
    path = folder / f"{lang}-{n}.conll"
    write_conll(path, (sents[i % BLOCK % len(sents)] for i in range(n)))
    return path


def commands(tiny: dict, inputs: dict[str, Path], out: Path) -> dict[str, list[str]]:
    """Each measured pipeline's command line (an empty cache under ``out``)."""
    tr = ["--translator", str(tiny["nllb_ct2"]), "--easyproject-translator", str(tiny["nllb_ct2"])]
    al = ["--aligner", str(tiny["xlmr"]), "--layer", "2"]
    ner = ["--ner-model", str(tiny["ner_onnx"])]
    common = ["--out", str(out), "--cache", str(out / "cache"), "--quiet"]
    return {
        "translate-test": ["translate-test", "--input", str(inputs["hau"]), "--lang", "hau", "--mode", "src2tgt",
                           "tgt2tgt", "--baseline", "--dataset", "masakhaner2", *tr, *ner, *al, *common],
        "translate-train plain": ["translate-train", "--input", str(inputs["en"]), "--lang", "hau", "--mode",
                                  "plain", *tr, *al, *common],
        "translate-train marker": ["translate-train", "--input", str(inputs["en"]), "--lang", "hau", "--mode",
                                   "marker", *tr, *al, *common],
        "model-transfer": ["model-transfer", "--input", str(inputs["hau"]), "--lang", "hau", "--dataset",
                           "masakhaner2", *ner, *common],
    }


def peak_kib(args: list[str]) -> int:
    """Peak RSS (KiB) of a fresh process that runs ``xfast ARGS``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"xfast {' '.join(args[:1])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return int(re.search(r"PEAK_KIB (\d+)", proc.stdout).group(1))


def measure(sizes: tuple[int, ...] = SIZES) -> dict[str, dict[int, int]]:
    """``{pipeline: {sentences: peak KiB}}``, each run in a fresh process."""
    from xfast.testing.tiny import ensure_tiny

    tiny = ensure_tiny(progress=False)
    peaks: dict[str, dict[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="xfast-bench-memory-") as tmp:
        for n in sizes:
            inputs = {lang: corpus(lang, n, Path(tmp)) for lang in SOURCES}
            for name in commands(tiny, inputs, Path(tmp)):  # each its own folder and cache
                args = commands(tiny, inputs, Path(tmp) / f"{name.replace(' ', '-')}-{n}")[name]
                peaks.setdefault(name, {})[n] = peak_kib(args)
    return peaks


def table(peaks: dict[str, dict[int, int]]) -> str:
    """A Markdown table: peak RSS per size and the growth per sentence between the extremes."""
    sizes = sorted(next(iter(peaks.values())))
    lo, hi = sizes[0], sizes[-1]
    head = "| pipeline | " + " | ".join(f"peak RSS, {n:,} sent." for n in sizes) + " | growth, KiB/sentence |"
    rows = [head, "|---|" + "---:|" * (len(sizes) + 1)]
    for name, by_size in peaks.items():
        growth = (by_size[hi] - by_size[lo]) / (hi - lo)
        rows.append(f"| {name} | " + " | ".join(f"{by_size[n] / 1024:.1f} MiB" for n in sizes)
                    + f" | {growth:.2f} |")
    return "\n".join(rows)


def growth(peaks: dict[str, dict[int, int]]) -> dict[str, float]:
    """KiB per sentence between the smallest and the largest size, per pipeline."""
    out = {}
    for name, by_size in peaks.items():
        lo, hi = min(by_size), max(by_size)
        out[name] = (by_size[hi] - by_size[lo]) / (hi - lo)
    return out


def test_memory_growth_per_sentence():
    peaks = measure()
    print(f"\npeak RSS of the NLLB pipelines, tiny models ({cpu_line()})")
    print(table(peaks))
    print(json.dumps(peaks))
    over = {k: round(v, 2) for k, v in growth(peaks).items() if v > TARGET_KIB}
    assert not over, f"growth above {TARGET_KIB} KiB per sentence: {over}"


if __name__ == "__main__":
    result = measure()
    print(cpu_line())
    print(table(result))
    print(json.dumps(result))
