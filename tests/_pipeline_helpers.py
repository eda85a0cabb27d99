"""What the pipeline tests share: where their data lives and short slices of it.

Everything the suite reads ships in the repository: the Europarl-NER test sets inside the package
(``xfast/data/europarl``), MasakhaNER-layout stand-ins and the paper's published results rows under
``tests/data`` (its README names their sources). Full third-party files that cannot ship are looked
for by :func:`full_data`, and the tests that need them skip with the reason when they are absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from xfast.io import read_conll, write_conll

HERE = Path(__file__).resolve().parent
#: the Europarl-NER test sets (799 parallel sentences), as the package ships them
EUROPARL_DIR = HERE.parent / "xfast" / "data" / "europarl"
#: MasakhaNER-layout sentences written for the tests (tests/data/README.md)
MASAKHANER_DIR = HERE / "data" / "masakhaner2"
#: rows of the paper's published results files (tests/data/README.md)
REFERENCE = HERE / "data" / "reference-results"
#: the CoNLL-2003 tag names in the order Hugging Face datasets number them
CONLL_NAMES = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def europarl_path(lang: str) -> Path:
    """The shipped Europarl-NER test set of ``lang`` (en, de, es or it)."""
    return EUROPARL_DIR / f"{lang}.conll"


def masakhaner_path(lang: str) -> Path:
    """The MasakhaNER-layout stand-in of ``lang`` (hau or yor)."""
    return MASAKHANER_DIR / f"{lang}.conll"


def full_data(relative: str) -> Path:
    """A file of the full data sets (``masakhaner2/hau.test.txt``, ...) from ``$XFAST_TEST_DATA``
    or ``../shared/data`` beside the clone; skips the calling test when neither holds it."""
    roots = [Path(os.environ["XFAST_TEST_DATA"])] if os.environ.get("XFAST_TEST_DATA") else []
    roots.append(HERE.parents[1] / "shared" / "data")
    for root in roots:
        if (root / relative).is_file():
            return root / relative
    pytest.skip(f"{relative} is not shipped (third-party data); set XFAST_TEST_DATA to a folder that holds it")


def head_conll(source: Path, n: int, out: Path) -> Path:
    """Write the first ``n`` sentences of CoNLL ``source`` to ``out``; returns ``out``."""
    write_conll(out, (s for _, s in zip(range(n), read_conll(source))))
    return out


def hf_metadata(names: list[str]) -> dict:
    """Parquet schema metadata as Hugging Face ``datasets`` writes it: ``tokens`` a sequence of
    strings and ``ner_tags`` a sequence of ``ClassLabel`` ids named ``names``."""
    features = {"tokens": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
                "ner_tags": {"feature": {"names": names, "_type": "ClassLabel"}, "_type": "Sequence"}}
    return {"huggingface": json.dumps({"info": {"features": features}})}
