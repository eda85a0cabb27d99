"""Session fixtures that build the tiny offline models of SPEC §10 (owned by the model runtime).

``tiny_models`` builds once into the model cache (``$XFAST_CACHE`` or ``~/.cache/xfast``,
directory ``tiny-<key>``, the key hashing the package versions and the build recipe) and
returns the dict of :func:`xfast.testing.tiny.build_tiny`: Hugging Face directories ``xlmr``,
``mbert``, ``ner``, ``nllb`` and exports ``ner_onnx``, ``nllb_ct2``, ``xlmr_onnx``,
``mbert_onnx``.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, Path]:
    from xfast.testing.tiny import ensure_tiny

    return ensure_tiny(progress=False)
