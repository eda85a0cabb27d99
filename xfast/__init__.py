"""xfast: high-throughput annotation projection for cross-lingual NER.

Word-align a labeled sentence with its translation and carry each entity span across
(Politov et al., NoDaLiDa 2025). See README.md for the command line and docs/api.md for the API.
"""

__version__ = "0.1.0"

__all__ = ["Aligner", "Projector", "__version__"]


def __getattr__(name: str):
    # Aligner pulls in the model runtime; import it only when asked for.
    if name == "Aligner":
        from xfast.aligner import Aligner

        return Aligner
    if name == "Projector":
        from xfast.serve.projector import Projector

        return Projector
    raise AttributeError(f"module 'xfast' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
