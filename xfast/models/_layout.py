"""Which checkpoints the packed layers run: a torch-free check shared by the ONNX export's packed
graph (:mod:`xfast.models.export.encoder`) and the torch backend's packed layers
(:mod:`xfast.models.backends._packed`)."""

from __future__ import annotations

__all__ = ["PACKABLE", "packable"]

#: model types whose layers run packed (absolute positions, post-LN layers)
PACKABLE = ("bert", "roberta", "xlm-roberta", "camembert")


def packable(model) -> bool:
    """A BERT-layout base model (absolute positions, post-LN layers) that packed layers can run."""
    cfg = model.config
    if cfg.model_type not in PACKABLE or getattr(cfg, "position_embedding_type", "absolute") != "absolute":
        return False
    emb = model.embeddings
    if not all(hasattr(emb, n) for n in ("word_embeddings", "position_embeddings", "LayerNorm")):
        return False
    return all(hasattr(lay, "attention") and hasattr(lay.attention, "self") and hasattr(lay, "intermediate")
               for lay in model.encoder.layer)
