"""SimAlign and AWESoME extraction on the device where the encoder ran (torch): only word pairs come back.

The host path (:func:`xfast.align.align_unit_states`, :func:`xfast.align.align_states_batch`)
copies every state off the GPU (1.5 KB per subword for e5-small) and spends most of its time
on similarity and extraction. Here the same steps run as batched tensor operations on the
device that holds the states, and only the int32 word pairs (with a count per sentence pair)
are copied back:

1. states are normalised to unit rows (SimAlign) where the encoder has not done it already;
   ``token_type="word"`` first averages each word's subwords (:func:`torch.Tensor.index_add_`);
2. sentence pairs are sorted by size and cut into chunks whose padded ``(B, M, N)`` similarity
   fits a cell budget; each chunk is one batched float32 product (TF32 off), rows the receiving
   side as in the host kernel, ``(cos + 1) / 2`` (SimAlign) or raw dot products (``softmax``),
   times SimAlign's distortion mask in float64 when asked for;
3. ``fwd``, ``rev``, ``inter``, ``itermax`` (its later rounds in float64, as the host kernel) and
   ``softmax`` (both softmaxes in float64) run on the whole chunk at once, padding masked out;
4. aligned cells become (sentence pair, labeled word, receiving word) codes; one sorted
   ``unique`` over all chunks gives every pair's sorted, unique word pairs in input order.

``mwmf`` (a sequential matching) and the reference's AWESoME pair order (``compat``) stay on the
host: :class:`~xfast.aligner.Aligner` sends those there.

The results equal the host kernel's up to ties: a product summed in another order can move the
largest value of a row to a neighbour within a few float32 ulps (docs/alignment.md, "Extraction on
the device", measures how often). torch is imported here, at the top; this module is imported only
when an aligner extracts on the device.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import torch

from xfast.align import _check_params  # the host's checks and weights: one rule for both paths
from xfast.errors import ModelError, ParameterError, check_choice, msg

__all__ = ["DeviceExtractor", "DeviceRows", "Side", "side_of", "unit_rows_"]

#: the methods extracted on the device (mwmf stays on the host)
DEVICE_METHODS = ("fwd", "rev", "inter", "itermax", "softmax")
_FWD, _REV, _INTER, _ITERMAX, _SOFTMAX = range(5)
_TF32_LOCK = threading.Lock()


def unit_rows_(x: torch.Tensor) -> torch.Tensor:
    """Every row of a float32 ``(n, d)`` tensor scaled to unit L2 norm in place, as SimAlign
    (scikit-learn's ``normalize``): near-zero rows are left as they are. Returns ``x``."""
    if len(x):
        norms = torch.sqrt((x * x).sum(1))
        norms[norms < 10 * torch.finfo(x.dtype).eps] = 1.0
        x /= norms[:, None]
    return x


class DeviceRows:
    """The encoder transform that keeps each model output on ``device`` as float32 (``on_device``
    tells the encoder so), scaled to unit rows when ``normalize`` (SimAlign's methods)."""

    on_device = True

    def __init__(self, device: str | torch.device, normalize: bool) -> None:
        self.device, self.normalize = torch.device(device), bool(normalize)

    def __repr__(self) -> str:
        return f"DeviceRows({str(self.device)!r}, normalize={self.normalize})"

    def __call__(self, x) -> torch.Tensor:
        t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, np.float32))
        t = t.to(self.device, torch.float32)
        return unit_rows_(t) if self.normalize else t


class Side:
    """One side of a batch of sentence pairs, on the device.

    ``rows``: float32 ``(R, d)`` tensor; ``starts``, ``lengths``: int64 ``(S,)`` numpy, sentence
    i's rows are ``rows[starts[i]:starts[i] + lengths[i]]``; ``words``: int32 numpy, the word of
    each of those rows, sentence i's at ``words[word_off[i]:word_off[i + 1]]`` (negative: none);
    ``unit``: the rows are unit-normalised already.
    """

    def __init__(self, rows: torch.Tensor, starts: np.ndarray, lengths: np.ndarray, words: np.ndarray,
                 word_off: np.ndarray, unit: bool) -> None:
        self.rows, self.starts, self.lengths = rows, starts, lengths
        self.words, self.word_off, self.unit = words, word_off, unit


def side_of(states, word_ids: np.ndarray, offsets: np.ndarray, device: torch.device) -> Side:
    """A :class:`Side` from an encoder's :class:`~xfast.models.types.States` (tensor blocks on
    the device, or numpy blocks, copied there) and its subwords' word ids and offsets."""
    blocks = states.blocks
    sizes = np.array([len(b) for b in blocks], np.int64)
    base = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    if isinstance(blocks[0], torch.Tensor):
        rows = blocks[0] if len(blocks) == 1 else torch.cat(list(blocks))
        rows = rows.to(device, torch.float32)
    else:
        host = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        rows = torch.from_numpy(np.ascontiguousarray(host, np.float32)).to(device)
    where = np.asarray(states.where, np.int64).reshape(-1, 2)
    starts = base[where[:, 0]] + where[:, 1] if len(where) else np.zeros(0, np.int64)
    unit = getattr(states.transform, "normalize", False) or getattr(states.transform, "__name__", "") in (
        "unit_rows_inplace", "unit_rows")
    return Side(rows, starts, np.diff(offsets).astype(np.int64), np.asarray(word_ids, np.int32),
                np.asarray(offsets, np.int64), bool(unit))


@contextlib.contextmanager
def _no_tf32(device: torch.device):
    """float32 products in float32 on CUDA (TF32 off) for the duration, restored after. TF32 is
    off unless the process turned it on; only then is the switch (process-wide) flipped, under a
    lock, so aligning threads do not wait for each other otherwise."""
    if device.type != "cuda" or not torch.backends.cuda.matmul.allow_tf32:
        yield
        return
    with _TF32_LOCK:
        before = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = before


class DeviceExtractor:
    """Word pairs of sentence pairs from states on a torch device (the module's steps).

    ``method``: one of :data:`DEVICE_METHODS`; ``token_type``, ``distortion``, ``max_count``,
    ``alpha``, ``threshold``: as :func:`xfast.align.align_states_batch` takes them;
    ``max_cells``: padded similarity cells per chunk (None: 2**25 on CUDA, 2**22 on a CPU);
    ``precision``: the encoder's number format, named when its states are not finite [E441].
    ``stats``: pairs, chunks and the bytes copied to the host.
    """

    def __init__(self, method: str, *, device: str | torch.device, token_type: str = "bpe",
                 distortion: float = 0.0, max_count: int = 2, alpha: float = 0.9, threshold: float = 1e-3,
                 max_cells: int | None = None, precision: str = "float32") -> None:
        check_choice("method", method, DEVICE_METHODS)
        check_choice("token_type", token_type, ("bpe", "word"))
        _, self.max_count, self.w1, self.w2, self.threshold = _check_params(method, max_count, alpha, threshold)
        if method == "softmax" and (token_type != "bpe" or distortion):
            raise ParameterError(msg("E202", name="distortion" if distortion else "token_type",
                                     expected="0 and 'bpe' with method 'softmax'",
                                     value=distortion if distortion else token_type))
        # the host kernel's rows are receiving tokens, so its fwd is xfast's rev
        self.code = {"fwd": _REV, "rev": _FWD, "inter": _INTER, "itermax": _ITERMAX, "softmax": _SOFTMAX}[method]
        self.method, self.token_type, self.distortion = method, token_type, float(distortion)
        self.device, self.precision = torch.device(device), precision
        on_gpu = self.device.type == "cuda"
        self.max_cells = int(max_cells or (1 << 25 if on_gpu else 1 << 22))
        self.max_elems = self.max_cells * 4  # gathered state values per side and chunk
        self.stats = {"pairs": 0, "sentence_pairs": 0, "chunks": 0, "bytes_to_host": 0}
        self._stats_lock = threading.Lock()  # host workers align batches in several threads

    def __repr__(self) -> str:
        return f"DeviceExtractor({self.method!r}, device={str(self.device)!r}, token_type={self.token_type!r})"

    # ------------------------------------------------------------------ public
    def align(self, labeled: Side, receiving: Side) -> tuple[np.ndarray, np.ndarray]:
        """``(offsets int64 (S+1,), pairs int32 (P, 2))``: each sentence pair's sorted unique
        ``(labeled word, receiving word)`` pairs, as :meth:`xfast.aligner.Aligner.align_columnar`
        gives them."""
        s = len(labeled.lengths)
        if len(receiving.lengths) != s:
            raise ParameterError(msg("E319", sizes=[s, len(receiving.lengths)]))
        with torch.no_grad(), _no_tf32(self.device):
            return self._align(labeled, receiving, s)

    # ------------------------------------------------------------------ inside
    def _prepare(self, side: Side) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, starts, lengths, row words) of a side at the level extraction works on:
        subwords, or each sentence's present words (their subwords' mean); rows unit-normalised
        for SimAlign's methods."""
        rows, starts, lengths = side.rows, side.starts, side.lengths
        sub_words = side.words
        if self.token_type == "word":
            rows, starts, lengths, sub_words = self._word_rows(side)
            unit = False
        else:
            unit = side.unit
        if self.method != "softmax" and not unit:
            rows = unit_rows_(rows.clone())
        # one zero row at the end: what padding slots read (_gather)
        return torch.cat([rows, rows.new_zeros(1, rows.shape[1])]), starts, lengths, sub_words

    def _word_rows(self, side: Side):
        """Each sentence's present words (those with subwords, in id order) as the mean of
        their subwords' rows: ``(rows, starts, lengths, word ids)``."""
        n = len(side.lengths)
        sent = np.repeat(np.arange(n, dtype=np.int64), side.lengths)
        local = np.arange(len(sent), dtype=np.int64) - np.repeat(side.word_off[:-1], side.lengths)
        src = np.repeat(side.starts, side.lengths) + local  # each subword's row
        w = side.words.astype(np.int64)
        keep = w >= 0
        width = int(w.max()) + 1 if len(w) else 1
        keys, inverse = np.unique(sent[keep] * width + w[keep], return_inverse=True)
        counts = np.bincount(keys // width, minlength=n).astype(np.int64)
        dev = self.device
        acc = torch.zeros((len(keys), side.rows.shape[1]), dtype=torch.float32, device=dev)
        acc.index_add_(0, torch.from_numpy(inverse.reshape(-1)).to(dev), side.rows[torch.from_numpy(src[keep]).to(dev)])
        per = np.bincount(inverse.reshape(-1), minlength=len(keys)).astype(np.float32)
        acc /= torch.from_numpy(np.maximum(per, 1.0)).to(dev)[:, None]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return acc, starts, counts, (keys % width).astype(np.int32)

    def _gather(self, rows: torch.Tensor, starts: np.ndarray, lengths: np.ndarray, width: int) -> torch.Tensor:
        """``(B, width, d)``: each sentence's rows, zero past its length (``rows`` ends with a
        zero row)."""
        b = len(starts)
        pos = np.arange(width, dtype=np.int64)[None, :]
        idx = np.where(pos < lengths[:, None], starts[:, None] + pos, len(rows) - 1)
        return rows[torch.from_numpy(idx.reshape(-1)).to(self.device)].view(b, width, -1)

    def _words(self, words: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, idx: np.ndarray,
               width: int) -> torch.Tensor:
        """``(B, width)`` int64 word of each row (-1 past the length)."""
        pos = np.arange(width, dtype=np.int64)[None, :]
        at = offsets[idx][:, None] + pos
        valid = pos < lengths[idx][:, None]
        out = np.where(valid, words[np.where(valid, at, 0)] if len(words) else -1, -1).astype(np.int64)
        return torch.from_numpy(out).to(self.device)

    def _chunks(self, m: np.ndarray, n: np.ndarray, d: int) -> list[np.ndarray]:
        """Sentence pairs (indices) grouped by size, each group's padded cells within budget."""
        order = np.argsort(np.maximum(m, n), kind="stable")
        order = order[(m[order] > 0) & (n[order] > 0)]
        out, k = [], 0
        while k < len(order):
            mm = nn = 0
            j = k
            while j < len(order):
                mm2, nn2 = max(mm, int(m[order[j]])), max(nn, int(n[order[j]]))
                b = j - k + 1
                if j > k and (b * mm2 * nn2 > self.max_cells or b * max(mm2, nn2) * d > self.max_elems):
                    break
                mm, nn, j = mm2, nn2, j + 1
            out.append(order[k:j])
            k = j
        return out

    def _align(self, labeled: Side, receiving: Side, s: int) -> tuple[np.ndarray, np.ndarray]:
        lab_rows, lab_starts, lab_len, lab_words = self._prepare(labeled)
        rec_rows, rec_starts, rec_len, rec_words = self._prepare(receiving)
        lab_off = np.concatenate([[0], np.cumsum(lab_len)]).astype(np.int64)
        rec_off = np.concatenate([[0], np.cumsum(rec_len)]).astype(np.int64)
        wl = int(lab_words.max()) + 1 if len(lab_words) else 1
        wr = int(rec_words.max()) + 1 if len(rec_words) else 1
        finite = torch.ones((), dtype=torch.bool, device=self.device)
        codes = []
        chunks = self._chunks(rec_len, lab_len, int(lab_rows.shape[1]))
        for idx in chunks:
            mm, nn = int(rec_len[idx].max()), int(lab_len[idx].max())
            x = self._gather(rec_rows, rec_starts[idx], rec_len[idx], mm)
            y = self._gather(lab_rows, lab_starts[idx], lab_len[idx], nn)
            sim = torch.bmm(x, y.transpose(1, 2))
            finite &= torch.isfinite(sim).all()
            m_t = torch.from_numpy(rec_len[idx]).to(self.device)
            n_t = torch.from_numpy(lab_len[idx]).to(self.device)
            aligned = self._extract(sim, m_t, n_t, mm, nn)
            b, i, j = aligned.nonzero(as_tuple=True)
            rw = self._words(rec_words, rec_off, rec_len, idx, mm)[b, i]
            lw = self._words(lab_words, lab_off, lab_len, idx, nn)[b, j]
            orig = torch.from_numpy(idx.astype(np.int64)).to(self.device)[b]
            ok = (rw >= 0) & (lw >= 0)
            codes.append(((orig * wl + lw) * wr + rw)[ok])
        if not bool(finite):
            bad = self._first_bad(((lab_rows, lab_starts, lab_len), (rec_rows, rec_starts, rec_len)))
            raise ModelError(msg("E441", precision=self.precision, index=bad))
        offsets = np.zeros(s + 1, np.int64)
        if codes:
            u = torch.unique(torch.cat(codes))  # sorted: by sentence pair, labeled word, receiving word
            pair = torch.stack([(u // wr) % wl, u % wr], 1).to(torch.int32)
            pairs, counts = pair.cpu().numpy(), torch.bincount(u // (wl * wr), minlength=s).cpu().numpy()
        else:
            pairs, counts = np.zeros((0, 2), np.int32), np.zeros(s, np.int64)
        np.cumsum(counts, out=offsets[1:])
        with self._stats_lock:
            self.stats["pairs"] += len(pairs)
            self.stats["sentence_pairs"] += s
            self.stats["chunks"] += len(chunks)
            self.stats["bytes_to_host"] += pairs.nbytes + counts.nbytes
        return offsets, pairs

    def _first_bad(self, sides) -> int:
        """The first sentence pair whose states are not finite (for the message)."""
        for rows, starts, lengths in sides:
            bad = ~torch.isfinite(rows).all(1)
            if bool(bad.any()):
                row = int(bad.nonzero()[0, 0])
                hit = np.flatnonzero((starts <= row) & (row < starts + lengths))
                return int(hit[0]) if len(hit) else 0
        return 0

    def _extract(self, sim: torch.Tensor, m: torch.Tensor, n: torch.Tensor, mm: int, nn: int) -> torch.Tensor:
        """Aligned cells ``(B, M, N)`` bool of padded similarities (rows: receiving tokens)."""
        dev = self.device
        rows = torch.arange(mm, device=dev)
        row_ok = rows[None, :] < m[:, None]
        col_ok = torch.arange(nn, device=dev)[None, :] < n[:, None]
        valid = row_ok[:, :, None] & col_ok[:, None, :]
        if self.code == _SOFTMAX:
            return self._softmax(sim, valid)
        sim = sim.add_(1.0).div_(2.0)
        if self.distortion:
            sim = self._distort(sim, m, n, mm, nn)
        s = sim.masked_fill(~valid, float("-inf"))
        out = torch.zeros(sim.shape, dtype=torch.bool, device=dev)
        rowarg = s.argmax(2)  # (B, M): each receiving token's best labeled token
        colarg = s.argmax(1)  # (B, N)
        if self.code == _FWD:
            out.scatter_(2, rowarg[:, :, None], row_ok[:, :, None] & (n > 0)[:, None, None])
            return out
        if self.code == _REV:
            out.scatter_(1, colarg[:, None, :], col_ok[:, None, :] & (m > 0)[:, None, None])
            return out
        mutual = (colarg.gather(1, rowarg) == rows[None, :]) & row_ok & (n > 0)[:, None]
        out.scatter_(2, rowarg[:, :, None], mutual[:, :, None])
        if self.code != _ITERMAX or self.max_count < 2:
            return out & valid
        # itermax's later rounds (SimAlign): weights by which side is still free, in float64
        go = (m > 2) & (n > 2)
        rfree = row_ok & ~mutual
        cfree = col_ok & ~out.any(1)
        x = sim.masked_fill(~valid, 0.0).double()
        for _ in range(1, self.max_count):
            active = go & rfree.any(1) & cfree.any(1)
            weight = torch.where(rfree[:, :, None], torch.where(cfree[:, None, :], self.w2, self.w1),
                                 torch.where(cfree[:, None, :], self.w1, 0.0))
            ws = (x * weight).masked_fill(~valid, float("-inf"))
            ra, ca = ws.argmax(2), ws.argmax(1)
            new = ((ca.gather(1, ra) == rows[None, :]) & (rfree | cfree.gather(1, ra)) & row_ok
                   & active[:, None])
            out.scatter_(2, ra[:, :, None], new[:, :, None] | out.gather(2, ra[:, :, None]))
            rfree &= ~new
            taken = torch.zeros_like(cfree).scatter_(1, ra, new)
            cfree &= ~taken
        return out & valid

    def _distort(self, sim: torch.Tensor, m: torch.Tensor, n: torch.Tensor, mm: int, nn: int) -> torch.Tensor:
        """SimAlign's distortion mask (float64, as the host) where both sides have >= 2 tokens."""
        dev = self.device
        i = torch.arange(mm, device=dev, dtype=torch.float64)[None, :, None]
        j = torch.arange(nn, device=dev, dtype=torch.float64)[None, None, :]
        md = (m.double() - 1).clamp(min=1)[:, None, None]
        nd = (n.double() - 1).clamp(min=1)[:, None, None]
        mask = 1.0 - ((j / nd - i / md) ** 2) * self.distortion
        use = ((m >= 2) & (n >= 2))[:, None, None]
        return torch.where(use, sim.double() * mask, sim.double())

    def _softmax(self, sim: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """AWESoME's two-way softmax filter in float64 (cells above ``threshold`` both ways)."""
        x = sim.double().masked_fill(~valid, float("-inf"))
        er = torch.exp(x - x.amax(2, keepdim=True))
        ec = torch.exp(x - x.amax(1, keepdim=True))
        keep = (er / er.sum(2, keepdim=True) > self.threshold) & (ec / ec.sum(1, keepdim=True) > self.threshold)
        return keep & valid
