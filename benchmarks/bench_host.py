"""Host work per sentence pair of ``xfast project``: everything but the model forward (issue 11).

On a GPU the encoder is cheap and the host work around it (reading, tokenizing, packing the
encoder's input, similarity, extraction, the subword-to-word union, projection, writing,
scoring, committing shards) decides the throughput. Three measurements:

* ``test_host_us_per_pair``: heuristic + n-gram greedy on the Europarl-NER en->de test sets
  repeated ``XFAST_BENCH_REPEAT`` times (default 26: 20,774 pairs), the process pinned to one
  CPU and BLAS to one thread. The model forward is a stand-in
  (:mod:`xfast.testing.standin`: float32 states of the real shape, 384 wide, one per real
  subword of the embedded e5-small's tokenizer) whose own time is subtracted. Baseline: the
  loop as it was before the columnar pipeline (``_host_baseline.py``), same process, same
  stand-in, same inputs; both give the same F1 (asserted). Prints microseconds per pair per
  stage; asserts xfast's host work <= 100 us per pair on AVX-512 CPUs (the issue's target), <=
  150 us elsewhere (AVX2-only EPYC measures 131-135; ``XFAST_BENCH_HOST_US`` to change).
* ``test_overlap``: the stand-in given a sleep per call such that the model stage (the
  forward, then the normalisation of its output, which runs in the model's thread while the
  output is in cache) takes as long as the host stages; wall time serial vs overlapped, and
  overlapped against the larger of the two (asserted within 20%).
* ``test_cli_marginal_and_rss``: ``xfast project`` as a user runs it, with a near-free real
  encoder (one BERT layer 16 wide with e5-small's tokenizer, ``_random_models.mini_e5``) on
  20k, 100k and 200k pairs: marginal wall time per pair between 20k and 100k, and peak RSS
  (``/usr/bin/time -v``) at 20k and 200k (target: within 10%). Two cores, as a user would.

Run: ``python -m pytest benchmarks/bench_host.py -s`` (about 5 minutes).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _host_baseline import baseline_project  # noqa: E402
from _random_models import mini_e5  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "xfast" / "data" / "europarl"  # the shipped test sets
REPEAT = int(os.environ.get("XFAST_BENCH_REPEAT", "26"))
def _avx512() -> bool:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512f" in info


# the target on the CPU kind it was set for; elsewhere the figure measured in
# benchmarks/README.md plus a margin, as a regression floor
TARGET_US = float(os.environ.get("XFAST_BENCH_HOST_US", "100" if _avx512() else "150"))


def cpu_line() -> str:
    """CPU model, the SIMD flags that matter here, and the load average."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.*)", info)
    flags = set((re.search(r"flags\s*:\s*(.*)", info) or re.search("", "")).group(1).split()) if info else set()
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512vl", "avx512_vnni", "avx_vnni") if f in flags]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model.group(1) if model else '?'}; flags: {' '.join(simd)}; load {load:.2f}"


def _corpus(tmp: Path, repeat: int) -> tuple[Path, Path, int]:
    en, de = tmp / "en.conll", tmp / "de.conll"
    en.write_bytes((DATA / "en.conll").read_bytes() * repeat)
    de.write_bytes((DATA / "de.conll").read_bytes() * repeat)
    return en, de, 799 * repeat


@pytest.fixture(scope="module")
def e5():
    from xfast.aligner import Aligner

    return Aligner("e5-small")


def test_host_us_per_pair(tmp_path, e5):
    from threadpoolctl import threadpool_limits

    from xfast.testing.standin import stand_in
    from xfast.pipelines.parallel import project_parallel

    en, de, n = _corpus(tmp_path, REPEAT)
    cpu = sorted(os.sched_getaffinity(0))[-1]
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        with threadpool_limits(1):
            model = stand_in(e5.encoder)
            e5.encoder.word_cache.clear()
            t = time.perf_counter()
            base = baseline_project(en, {"de": de}, tmp_path / "base", e5, model.padded)
            base_wall, base_model = time.perf_counter() - t, model.seconds
            model.seconds = 0.0
            e5.encoder.word_cache.clear()
            t = time.perf_counter()
            res = project_parallel(en, {"de": de}, tmp_path / "xfast", aligner=e5, progress=False, overlap=False)
            wall, model_s = time.perf_counter() - t, model.seconds
    finally:
        os.sched_setaffinity(0, saved)
    assert [round(r["overall_f1"], 12) for r in res["results"]] == [round(r["overall_f1"], 12) for r in base["results"]]
    us = 1e6 / n
    bt, xt = base["timings"], res["timings"]
    rows = [
        ("read", bt["read"], xt.get("read", 0.0)),
        ("tokenize + encoder input/output (model excluded)", bt["tokenize+encode"] - base_model,
         xt.get("tokenize", 0.0) + xt.get("encode", 0.0) - model_s),
        ("similarity + extraction + union", bt["align"], xt.get("align", 0.0)),
        ("projection (heuristic + n-gram greedy)", bt["project"], xt.get("project", 0.0)),
        ("write", bt["write"], xt.get("write", 0.0)),
        ("evaluate", bt["evaluate"], xt.get("evaluate", 0.0)),
    ]
    named = sum(r[2] for r in rows) + model_s
    rows.append(("other (shard commits, loop)", base_wall - base_model - sum(r[1] for r in rows),
                 wall - named - xt.get("load aligner", 0.0)))
    host_base, host = base_wall - base_model, wall - model_s
    print(f"\nhost work per pair, {n:,} Europarl en->de pairs, one core ({cpu_line()})")
    print(f"{'stage':52s} {'before us':>10s} {'xfast us':>10s}")
    for name, b, x in rows:
        print(f"{name:52s} {b * us:10.1f} {x * us:10.1f}")
    print(f"{'host total':52s} {host_base * us:10.1f} {host * us:10.1f}   ratio {host_base / host:.1f}x")
    print(f"{'stand-in model forward (excluded)':52s} {base_model * us:10.1f} {model_s * us:10.1f}")
    wc = res["run"]["word_cache"]
    print(f"word cache: {wc['hits']:,} hits, {wc['misses']:,} misses, hit rate {wc['hit_rate']:.3f}")
    assert host * us <= TARGET_US, f"host work {host * us:.1f} us per pair > {TARGET_US}"


def test_overlap(tmp_path, e5):
    """The model stage given a sleep per call so that it takes as long as the host stages:
    overlapped wall time tends to the larger of the two instead of their sum."""
    from xfast.testing.standin import stand_in
    from xfast.pipelines.parallel import project_parallel

    en, de, n = _corpus(tmp_path, max(4, REPEAT // 3))
    model = stand_in(e5.encoder)
    project_parallel(en, {"de": de}, tmp_path / "warm", aligner=e5, progress=False)  # warm the word cache
    model.calls = 0
    t = time.perf_counter()
    probe = project_parallel(en, {"de": de}, tmp_path / "probe", aligner=e5, progress=False, overlap=False)
    wall = time.perf_counter() - t
    # the model stage (the forward, then normalising its output in cache) and the rest
    stage = probe["timings"]["encode"]
    host = wall - stage
    delay = max(0.0, host - stage) / model.calls
    delay = max(0.0, delay - _sleep_overshoot(delay))
    walls = {}
    for overlap in (False, True):
        model = stand_in(e5.encoder, delay_s=delay)
        t = time.perf_counter()
        res = project_parallel(en, {"de": de}, tmp_path / f"run{overlap}", aligner=e5, progress=False,
                               overlap=overlap)
        walls[overlap] = time.perf_counter() - t
    model_stage = res["timings"]["encode"]
    print(f"\noverlap, {n:,} pairs ({cpu_line()}): model stage {model_stage:.2f} s (with a {delay * 1e3:.2f} ms "
          f"sleep per call), host stages {host:.2f} s")
    larger = max(model_stage, host)
    print(f"serial {walls[False]:.2f} s, overlapped {walls[True]:.2f} s: {walls[False] / walls[True]:.2f}x; "
          f"overlapped / larger of the two: {walls[True] / larger:.2f}")
    assert walls[True] <= 1.2 * larger  # close to the larger of the two, not their sum


def _sleep_overshoot(delay: float) -> float:
    """How much longer than asked ``time.sleep(delay)`` takes here (timer slack, wake-up)."""
    t = time.perf_counter()
    for _ in range(50):
        time.sleep(delay)
    return max(0.0, (time.perf_counter() - t) / 50 - delay)


def _cli(tmp: Path, aligner: Path, repeat: int, *extra: str) -> tuple[float, int, int]:
    tmp.mkdir(parents=True, exist_ok=True)
    en, de, n = _corpus(tmp, repeat)
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "xfast", "project", "--labeled", str(en), "--receiving",
           f"de={de}", "--out", str(tmp / "out"), "--aligner", str(aligner), "--layer", "1", "--quiet",
           "--method", "heuristic", "ngram-greedy", *extra]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    wall = time.perf_counter() - t
    assert proc.returncode == 0, proc.stderr[-2000:]
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return wall, rss, n


def test_cli_marginal_and_rss(tmp_path):
    from xfast.models.cache import cache_dir

    if not Path("/usr/bin/time").exists():
        pytest.skip("needs /usr/bin/time")
    mini = mini_e5(cache_dir() / "bench" / "mini-e5-16")
    _cli(tmp_path / "warm", mini, 1)  # exports the ONNX graph once
    runs = {r: _cli(tmp_path / f"r{r}", mini, r) for r in (25, 125, 250)}
    (w20, rss20, n20), (w100, _, n100), (_, rss200, n200) = runs[25], runs[125], runs[250]
    print(f"\nxfast project with a near-free encoder (1 layer, 16 wide, e5-small tokenizer), 2 cores ({cpu_line()})")
    for r, (w, rss, n) in runs.items():
        print(f"{n:>8,} pairs: {w:7.2f} s wall, peak RSS {rss / 1024:7.1f} MiB")
    print(f"marginal wall time per pair, {n20:,} -> {n100:,}: {(w100 - w20) / (n100 - n20) * 1e6:.1f} us")
    print(f"peak RSS {n200:,} / {n20:,} pairs: {rss200 / rss20:.3f}")
    assert rss200 <= 1.10 * rss20


def test_host_workers(tmp_path, e5, monkeypatch):
    """Host pairs/s with 1 and 2 (and, where the machine has them, 4) host workers, the model
    made free: the corpus is the Europarl-NER en->de set ``XFAST_BENCH_WORKER_REPEAT`` times
    (default 125: 99,875 pairs) in batches of 47 sentences (799 = 17 x 47), so the batches repeat
    and each batch's stand-in states are computed once and then looked up (on a GPU the model's
    time is off the CPU; here it would take a core). Everything else is the engine as it runs:
    the driver reads, merges and commits; the workers tokenize, align, project, write and score.
    The batch size is 799 sentences (the whole set: each batch the same, its states computed
    once); a smaller batch (47, 17 distinct batches) is printed too, where the driver's share
    per batch weighs more.
    Prints the serial part that stays in the driver per pair, and the speed-up that part allows
    (Amdahl) on 16 cores. Outputs are the same bytes for every count (asserted)."""
    import hashlib

    from xfast.pipelines.parallel import project_parallel
    from xfast.pipelines.stages import batch
    from xfast.testing.standin import stand_in

    repeat = int(os.environ.get("XFAST_BENCH_WORKER_REPEAT", "125"))
    en, de, n = _corpus(tmp_path, repeat)
    stand_in(e5.encoder)
    real, memo = batch.BatchWork.model, {}

    def model(self, prep):  # a batch's states once; later the same batch's come from memory
        key = hashlib.blake2b(b"".join(s.ids.tobytes() for s in prep[0]), digest_size=16).digest()
        if key not in memo:
            memo[key] = real(self, prep)
        return memo[key]

    monkeypatch.setattr(batch.BatchWork, "model", model)
    counts = [1, 2] + ([4] if (os.cpu_count() or 1) >= 4 else [])
    walls, driver, outs = {}, {}, {}
    for batch_size, w in [(b, w) for b in (799, 47) for w in counts]:
        kw = dict(aligner=e5, progress=False, batch_size=batch_size, shard_size=799 * batch_size)
        if w == 1:
            project_parallel(en, {"de": de}, tmp_path / "warm", host_workers=1, limit=799 * 2, overwrite=True, **kw)
        t = time.perf_counter()
        res = project_parallel(en, {"de": de}, tmp_path / f"w{w}", host_workers=w, overwrite=True, **kw)
        walls[batch_size, w] = time.perf_counter() - t
        tm = res["timings"]
        driver[batch_size, w] = sum(tm.get(k, 0.0) for k in ("read", "merge", "commit"))
        outs[batch_size, w] = {p.name: p.read_bytes() for p in (tmp_path / f"w{w}").iterdir() if p.suffix == ".conll"}
    print(f"\nhost workers, {n:,} Europarl en->de pairs, the model's states looked up, {os.cpu_count()} cores "
          f"({cpu_line()})")
    print(f"{'batch':>5s} {'workers':>7s} {'wall s':>8s} {'pairs/s':>9s} {'vs 1':>6s} {'driver us/pair':>15s}")
    for b, w in walls:
        print(f"{b:5d} {w:7d} {walls[b, w]:8.2f} {n / walls[b, w]:9.0f} {walls[b, 1] / walls[b, w]:6.2f} "
              f"{driver[b, w] / n * 1e6:15.1f}")
    serial = driver[799, 1] / walls[799, 1]
    print(f"serial (driver) share of one worker's wall time at 799: {serial:.3f}; Amdahl bound on 16 cores: "
          f"{1 / (serial + (1 - serial) / 16):.1f}x")
    assert all(outs[k] == outs[k[0], 1] for k in outs)


def test_cli_marginal_host_workers(tmp_path):
    """``xfast project`` as a user runs it with the near-free encoder (one BERT layer 16 wide,
    e5-small's tokenizer), ``--host-workers`` 1 and 2: marginal wall time per pair between 20k
    and 100k pairs. Two cores, as a user would; the encoder takes its share of them."""
    from xfast.models.cache import cache_dir

    if not Path("/usr/bin/time").exists():
        pytest.skip("needs /usr/bin/time")
    mini = mini_e5(cache_dir() / "bench" / "mini-e5-16")
    _cli(tmp_path / "warm", mini, 1)
    marginal = {}
    for w in ("1", "2"):
        (w20, _, n20), (w100, _, n100) = (_cli(tmp_path / f"w{w}-{r}", mini, r, "--host-workers", w) for r in (25, 125))
        marginal[w] = (w100 - w20) / (n100 - n20) * 1e6
    print(f"\nxfast project, near-free encoder, 2 cores ({cpu_line()}): marginal us/pair 20k -> 100k: "
          f"--host-workers 1 {marginal['1']:.1f}, 2 {marginal['2']:.1f} ({marginal['1'] / marginal['2']:.2f}x)")


def test_projector_host_workers(e5, monkeypatch):
    """``xfast.Projector`` (and so ``xfast serve``) with 1 and 2 host workers: pairs/s of
    ``project_batch`` on batches of 32 (a served batch), 64 and 256 Europarl en->de pairs, methods
    mixed, the model made free as above (each batch's states computed once, then looked up), so
    what is timed is the host work that the workers share: extraction, the subword-to-word
    union and projection. Answers are the same for every count (asserted)."""
    from xfast.io import read_conll
    from xfast.pipelines.parallel import labeled_entities
    from xfast.serve import Projector
    from xfast.testing.standin import stand_in

    stand_in(e5.encoder)
    lab, rec = list(read_conll(DATA / "en.conll")), list(read_conll(DATA / "de.conll"))
    pairs = [(s.tokens, labeled_entities(s.labels), r.tokens) for s, r in zip(lab, rec)]
    methods = [("heuristic", "ngram-greedy")[i % 2] for i in range(len(pairs))]
    real, memo = Projector._encode, {}

    def encode(self, labeled, receiving):  # a batch's states once; later the same batch's from memory
        key = (tuple(labeled[0]), tuple(labeled[-1]), len(labeled))
        if key not in memo:
            memo[key] = real(self, labeled, receiving)
        return memo[key]

    monkeypatch.setattr(Projector, "_encode", encode)
    print(f"\nProjector.project_batch, Europarl en->de, the model's states looked up ({cpu_line()})")
    print(f"{'batch':>5s} {'workers':>7s} {'pairs/s':>9s} {'vs 1':>6s}")
    for size in (32, 64, 256):
        batches = [pairs[i:i + size] for i in range(0, len(pairs) - size + 1, size)]
        rates, answers = {}, {}
        for w in (1, 2):
            p = Projector(e5, host_workers=w)
            answers[w] = [p.project_batch(b, method=methods[:len(b)]) for b in batches]  # warm, and the answers
            t, rounds = time.perf_counter(), 5
            for _ in range(rounds):
                for b in batches:
                    p.project_batch(b, method=methods[:len(b)])
            rates[w] = rounds * sum(map(len, batches)) / (time.perf_counter() - t)
            print(f"{size:5d} {w:7d} {rates[w]:9.0f} {rates[w] / rates[1]:6.2f}")
        assert answers[1] == answers[2]
