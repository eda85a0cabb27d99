"""BERT and XLM-R layers over packed tokens: the torch backend's model (:mod:`xfast.models.backends.torch`).

The sequences of a batch lie back to back, ``(N, hidden)``, with no padding row. Every token-wise
step (embeddings, the fused query/key/value projection, the attention output and feed-forward
projections, the layer norms) runs on those N rows; only attention needs to know where a sequence
starts and ends:

- ``varlen``: ``torch.nn.attention.varlen.varlen_attn`` (FlashAttention over cumulative sequence
  lengths; torch >= 2.9, CUDA, float16 or bfloat16, compute capability 8.0 or newer): nothing is
  padded at all;
- ``sdpa``: ``scaled_dot_product_attention`` over the batch laid out ``(B, heads, T, head_dim)``
  with a key mask, so a token attends only to its own sequence (the block-diagonal mask of the
  packed batch, without its N x N size); the batches are length-sorted, so T is close to every
  length. On a CPU in float32 this is the same arithmetic as transformers' layers: the states
  equal ``hidden_states[L]`` within 1e-5 (tests/test_torch_backend.py).

torch and transformers' modules are taken from the loaded checkpoint (the weights are shared,
except the query, key and value weights, concatenated into one matrix). Imported only by the
torch backend.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xfast.models._layout import packable

try:  # torch >= 2.9; FlashAttention's variable-length kernel
    from torch.nn.attention.varlen import varlen_attn as _varlen_attn
except ImportError:  # older torch: attention over the padded layout
    _varlen_attn = None

__all__ = ["Attention", "PackedEncoder", "packable", "varlen_reason"]

def varlen_reason(device: torch.device, dtype: torch.dtype, head_dim: int) -> str | None:
    """Why the variable-length kernel cannot run here, or None when it can."""
    if _varlen_attn is None:
        return f"torch {torch.__version__} has no torch.nn.attention.varlen"
    if device.type != "cuda":
        return "not on CUDA"
    if dtype not in (torch.float16, torch.bfloat16):
        return f"{str(dtype).replace('torch.', '')} (it takes float16 or bfloat16)"
    if head_dim % 8 or head_dim > 256:
        return f"head size {head_dim}"
    if torch.cuda.get_device_capability(device) < (8, 0):
        return "a GPU older than compute capability 8.0"
    return None


class Attention:
    """Where each sequence of a packed batch lies, for the attention of every layer.

    ``cu``: int32 ``(B+1,)`` cumulative lengths and ``max_len`` (``varlen``); else ``gather``
    int64 ``(B*T,)`` (the packed row of each padded slot, N for padding), ``unpad`` int64
    ``(N,)`` (the padded slot of each packed row) and ``mask`` bool ``(B, 1, 1, T)``.
    """

    def __init__(self, kind: str, b: int, t: int, cu=None, gather=None, unpad=None, mask=None) -> None:
        self.kind, self.b, self.t = kind, b, t
        self.cu, self.gather, self.unpad, self.mask = cu, gather, unpad, mask

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``(N, heads, head_dim)`` each -> the attention context ``(N, heads, head_dim)``."""
        if self.kind == "varlen":
            return _varlen_attn(q, k, v, self.cu, self.cu, self.t, self.t)
        n, h, d = q.shape
        zero = q.new_zeros(1, h, d)

        def padded(x):  # (N, h, d) -> (B, h, T, d); padding slots read the zero row
            return torch.cat([x, zero])[self.gather].view(self.b, self.t, h, d).transpose(1, 2)

        out = F.scaled_dot_product_attention(padded(q), padded(k), padded(v), attn_mask=self.mask)
        return out.transpose(1, 2).reshape(self.b * self.t, h, d)[self.unpad]


class _Layer(torch.nn.Module):
    """One post-LN transformer layer over packed rows, query/key/value in one product."""

    def __init__(self, layer, heads: int) -> None:
        super().__init__()
        sa = layer.attention.self
        hidden = sa.query.weight.shape[1]
        self.heads, self.head_dim = heads, hidden // heads
        self.qkv = torch.nn.Linear(hidden, 3 * hidden)
        with torch.no_grad():
            self.qkv.weight.copy_(torch.cat([sa.query.weight, sa.key.weight, sa.value.weight]))
            self.qkv.bias.copy_(torch.cat([sa.query.bias, sa.key.bias, sa.value.bias]))
        self.out, self.norm1 = layer.attention.output.dense, layer.attention.output.LayerNorm
        self.up, self.act = layer.intermediate.dense, layer.intermediate.intermediate_act_fn
        self.down, self.norm2 = layer.output.dense, layer.output.LayerNorm

    def forward(self, x: torch.Tensor, attend: Attention) -> torch.Tensor:
        n = x.shape[0]
        qkv = self.qkv(x).view(n, 3, self.heads, self.head_dim)
        ctx = attend(qkv[:, 0], qkv[:, 1], qkv[:, 2]).reshape(n, -1)
        x = self.norm1(self.out(ctx) + x)
        return self.norm2(self.down(self.act(self.up(x))) + x)


class PackedEncoder(torch.nn.Module):
    """Layers 1..L of a BERT-layout base model (:func:`packable`) over packed tokens:
    ``forward(ids, positions, attend)`` with int64 ``(N,)`` ids and position ids gives the
    ``(N, hidden)`` states of layer L (token type 0, as xfast feeds single sentences), or
    ``head``'s output on them (a token classifier's linear layer)."""

    def __init__(self, model, head=None) -> None:
        super().__init__()
        self.head = head
        emb, cfg = model.embeddings, model.config
        self.words, self.positions, self.norm = emb.word_embeddings, emb.position_embeddings, emb.LayerNorm
        types = getattr(emb, "token_type_embeddings", None)
        first = types.weight[0].detach().clone() if types is not None else torch.zeros(cfg.hidden_size)
        self.register_buffer("type0", first)
        self.layers = torch.nn.ModuleList(_Layer(layer, cfg.num_attention_heads) for layer in model.encoder.layer)
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, attend: Attention) -> torch.Tensor:
        x = self.norm(self.words(ids) + self.type0 + self.positions(positions))  # transformers' order
        for layer in self.layers:
            x = layer(x, attend)
        return x if self.head is None else self.head(x)
