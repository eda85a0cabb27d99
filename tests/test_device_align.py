"""Similarity and extraction on the torch device (xfast/align/device.py) against the host kernels.

On a CPU the device path runs on torch's CPU tensors, which is how its parity is held here:

- the shipped Europarl-NER test sets (en -> de, es, it; 799 pairs each) encoded once by e5-small
  (torch, float32, layer 8): itermax on each receiving side, and every other method on German,
  give the host kernel's word pairs for >= 99.5% of the pairs (docs/alignment.md explains the
  ties behind the rest) and heuristic and n-gram projection F1 within 0.2 points;
- random states (empty sentences, subwords without a word, every size around the chunk budget)
  give exactly the host's pairs;
- the aligner sends states through the device path end to end, and keeps mwmf and compat's
  AWESoME order on the host.

Tests marked ``cuda`` compare the GPU with the CPU and skip where torch sees no GPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests._pipeline_helpers import europarl_path
from xfast.errors import ModelError, ParameterError
from xfast.io import entities_of, read_conll
from xfast.io.tokens import from_sentences

torch = pytest.importorskip("torch")

from xfast.align import align_states_batch, align_unit_states, unit_rows  # noqa: E402
from xfast.align.device import DeviceExtractor, Side, side_of  # noqa: E402
from xfast.models.types import States  # noqa: E402

LANGS = ("de", "es", "it")
CUDA = torch.cuda.is_available()


def cuda(test):
    """Marked ``cuda`` (``pytest -m cuda`` selects them) and skipped where torch sees no GPU."""
    return pytest.mark.cuda(pytest.mark.skipif(not CUDA, reason="needs torch with a CUDA GPU")(test))


@pytest.fixture(scope="module")
def europarl():
    """Every side's sentences, gold labels, subwords and raw float32 states (e5-small, layer 8)."""
    from xfast.models.encoder import Encoder

    enc = Encoder("e5-small", backend="torch", device="cpu")
    out = {}
    for lang in ("en", *LANGS):
        sents = list(read_conll(europarl_path(lang)))
        sub = enc.subwords(from_sentences([s.tokens for s in sents]))
        out[lang] = (sents, sub, enc.encode_subwords(sub))
    return out


def _host(lab, rec, method="itermax", token_type="bpe", distortion=0.0):
    """(offsets, pairs) of the host kernels, as Aligner.align_columnar computes them."""
    (lsub, lst), (rsub, rst) = lab, rec
    lw = [lsub.word_ids[a:b] for a, b in zip(lsub.offsets[:-1], lsub.offsets[1:])]
    rw = [rsub.word_ids[a:b] for a, b in zip(rsub.offsets[:-1], rsub.offsets[1:])]
    if method != "softmax" and token_type == "bpe":
        return align_unit_states([unit_rows(x) for x in lst.sentences()], [unit_rows(x) for x in rst.sentences()],
                                 lw, rw, method=method, distortion=distortion)
    pairs = align_states_batch(lst.sentences(), rst.sentences(), lw, rw, method=method, token_type=token_type,
                               distortion=distortion)
    return np.concatenate([[0], np.cumsum([len(p) for p in pairs])]), np.concatenate(pairs).reshape(-1, 2)


def _device(lab, rec, method="itermax", device="cpu", **kw):
    (lsub, lst), (rsub, rst) = lab, rec
    ex = DeviceExtractor(method, device=device, **kw)
    return ex.align(side_of(lst, lsub.word_ids, lsub.offsets, ex.device),
                    side_of(rst, rsub.word_ids, rsub.offsets, ex.device))


def _lists(offsets, pairs):
    return [pairs[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def _agreement(a, b) -> tuple[float, int]:
    """Share of identical pairs (intersection over union, summed over sentence pairs), and how many differ."""
    same = union = 0
    for x, y in zip(_lists(*a), _lists(*b)):
        sx, sy = set(map(tuple, x.tolist())), set(map(tuple, y.tolist()))
        same += len(sx & sy)
        union += len(sx | sy)
    return same / max(union, 1), union - same


def _f1(sents, rec_sents, alignment) -> dict[str, float]:
    from xfast.evaluate import scores
    from xfast.project import heuristic_batch, match_batch, ngram_candidates_batch

    ents = [entities_of(s.labels) for s in sents]
    gold = [s.labels for s in rec_sents]
    n = [len(s.tokens) for s in rec_sents]
    aln = _lists(*alignment)
    return {"heuristic": scores(gold, heuristic_batch(ents, aln, n))["overall_f1"],
            "ngram-greedy": scores(gold, match_batch(ents, ngram_candidates_batch([s.tokens for s in rec_sents]),
                                                     aln, n))["overall_f1"]}


@pytest.mark.parametrize("lang", LANGS)
def test_europarl_itermax_pairs_and_f1_match_the_host(europarl, lang):
    en, rec = europarl["en"], europarl[lang]
    host = _host(en[1:], rec[1:])
    dev = _device(en[1:], rec[1:])
    share, differ = _agreement(host, dev)
    print(f"\n{lang} itermax: identical pairs {share:.4%} ({differ} differ)")
    assert share >= 0.995
    f_host, f_dev = _f1(en[0], rec[0], host), _f1(en[0], rec[0], dev)
    for m in f_host:
        print(f"{lang} {m} F1: host {f_host[m]:.4f} device {f_dev[m]:.4f}")
        assert abs(f_host[m] - f_dev[m]) <= 0.002


@pytest.mark.parametrize("method, kw", [("inter", {}), ("fwd", {}), ("rev", {}), ("softmax", {}),
                                        ("itermax", {"token_type": "word"}), ("itermax", {"distortion": 0.5})])
def test_europarl_every_method_matches_the_host(europarl, method, kw):
    en, de = europarl["en"], europarl["de"]
    share, differ = _agreement(_host(en[1:], de[1:], method, **kw), _device(en[1:], de[1:], method, **kw))
    print(f"\nde {method} {kw}: identical pairs {share:.4%} ({differ} differ)")
    assert share >= 0.995


def _random_side(rng, n_sent, hidden=16, empty_every=7):
    lengths = rng.integers(0, 30, n_sent)
    lengths[::empty_every] = 0
    words, offsets = [], [0]
    for n in lengths:
        w = np.sort(rng.integers(0, max(1, int(n) // 2 + 1), int(n))).astype(np.int32)
        if n:
            w[rng.random(int(n)) < 0.05] = -1  # subwords without a word
        words.append(w)
        offsets.append(offsets[-1] + int(n))
    states = rng.standard_normal((int(lengths.sum()), hidden)).astype(np.float32)
    off = np.array(offsets, np.int64)
    where = np.stack([np.zeros(n_sent, np.int64), off[:-1]], 1)
    return (type("Sub", (), {"word_ids": np.concatenate(words) if words else np.zeros(0, np.int32),
                             "offsets": off})(), States([states], where, off))


@pytest.mark.parametrize("method", ["itermax", "inter", "fwd", "rev", "softmax"])
@pytest.mark.parametrize("max_cells", [None, 64, 2000])
def test_random_states_give_the_hosts_pairs_exactly(method, max_cells):
    rng = np.random.default_rng(len(method) + (max_cells or 0))
    lab, rec = _random_side(rng, 60), _random_side(rng, 60)
    host = _host(lab, rec, method)
    dev = _device(lab, rec, method, max_cells=max_cells)
    np.testing.assert_array_equal(host[0], dev[0])
    np.testing.assert_array_equal(host[1], dev[1])
    assert dev[1].dtype == np.int32 and dev[0].dtype == np.int64


def test_no_sentences_and_bad_settings():
    ex = DeviceExtractor("itermax", device="cpu")
    empty = Side(torch.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32),
                 np.zeros(1, np.int64), False)
    offsets, pairs = ex.align(empty, empty)
    assert offsets.tolist() == [0] and pairs.shape == (0, 2)
    with pytest.raises(ParameterError, match=r"\[E201\].*method"):
        DeviceExtractor("mwmf", device="cpu")
    with pytest.raises(ParameterError, match=r"\[E202\].*alpha"):
        DeviceExtractor("itermax", device="cpu", alpha=2.0)
    with pytest.raises(ParameterError, match=r"\[E202\].*distortion"):
        DeviceExtractor("softmax", device="cpu", distortion=0.3)


def test_states_that_are_not_finite_name_their_sentence_pair():
    rng = np.random.default_rng(3)
    lab, rec = _random_side(rng, 10), _random_side(rng, 10)
    rec[1].blocks[0][rec[0].offsets[4]] = np.inf
    with pytest.raises(ModelError, match=r"\[E441\] the float16 encoder gave NaN or infinite states "
                                         r"\(sentence pair 4\)"):
        _device(lab, rec, precision="float16")


def test_aligner_extracts_on_the_device_end_to_end(tiny_models):
    from xfast.aligner import Aligner

    en = [s.tokens for _, s in zip(range(60), read_conll(europarl_path("en")))]
    de = [s.tokens for _, s in zip(range(60), read_conll(europarl_path("de")))]
    for method in ("itermax", "softmax", "mwmf"):
        host = Aligner(tiny_models["xlmr"], layer=2, backend="torch", device="cpu", method=method)
        dev = Aligner(tiny_models["xlmr"], layer=2, backend="torch", device="cpu", method=method, extraction="device")
        assert host.extraction == "host" and dev.extraction == "device"
        assert (dev._device is None) == (method == "mwmf")  # mwmf stays on the host
        assert getattr(dev.state_transform, "on_device", False) == (method != "mwmf")
        # the columnar path (what xfast project runs): states stay torch tensors between the stages
        enc = dev.encoder
        sl, sr = enc.subwords(from_sentences(en)), enc.subwords(from_sentences(de))
        stl = enc.encode_subwords(sl, transform=dev.state_transform)
        str_ = enc.encode_subwords(sr, transform=dev.state_transform)
        if method != "mwmf":
            assert isinstance(stl.blocks[0], torch.Tensor)
        got = dev.align_columnar(sl, stl, sr, str_)
        want = host.align_columnar(sl, enc.encode_subwords(sl, transform=host.state_transform),
                                   sr, enc.encode_subwords(sr, transform=host.state_transform))
        assert _agreement(want, got)[0] == 1.0
        # the list API, and link scores of states kept on the device
        assert all(np.array_equal(a, b) for a, b in zip(dev.align_batch(en, de), host.align_batch(en, de)))
    dev = Aligner(tiny_models["xlmr"], layer=2, backend="torch", device="cpu", extraction="device")
    assert dev.settings["backend"] == "torch" and dev.settings["extraction"] == "device"
    assert dev.device_stats["sentence_pairs"] == 0
    dev.align_batch(en[:5], de[:5])
    stats = dev.device_stats
    assert stats["sentence_pairs"] == 5 and stats["bytes_to_host"] == stats["pairs"] * 8 + 5 * 8
    compat = Aligner(tiny_models["xlmr"], layer=2, backend="torch", device="cpu", method="softmax", compat=True,
                     extraction="device")
    assert compat._device is None  # the reference's pair order is the host's
    with pytest.raises(ParameterError, match=r"\[E233\].*runs on onnx"):
        Aligner(tiny_models["xlmr"], layer=2, backend="onnx", extraction="device")


@cuda
def test_cuda_extraction_matches_the_cpu(tmp_path):
    """Extraction on the GPU against the CPU (the same float32 states, copied there)."""
    from xfast.models.encoder import Encoder
    from xfast.testing._tinybuild import _build_xlmr
    from xfast.testing.tiny import tiny_corpus

    enc = Encoder(_build_xlmr(tmp_path / "xlmr", tiny_corpus(), layers=4, labels=None, seed=0), layer=4,
                  backend="torch", device="cpu")
    sides = []
    for lang in ("en", "de"):
        sub = enc.subwords(from_sentences([s.tokens for s in read_conll(europarl_path(lang))]))
        sides.append((sub, enc.encode_subwords(sub)))
    for method in ("itermax", "softmax", "rev"):
        cpu, gpu = _device(*sides, method=method), _device(*sides, method=method, device="cuda")
        assert _agreement(cpu, gpu)[0] >= 0.999
        assert _agreement(_host(*sides, method=method), gpu)[0] >= 0.995
