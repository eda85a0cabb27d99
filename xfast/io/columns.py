"""Kept so ``from xfast.io.columns import ...`` (docs/api.md, the tests) goes on working: the
columnar data type now lives in :mod:`xfast.io.tokens`, reading and counting in
:mod:`xfast.io.readers`, and CoNLL writing in :mod:`xfast.io.conll`. New code imports from
those."""

from xfast.io.conll import _K, conll_bytes  # noqa: F401 - _K: the _text kernel, as before
from xfast.io.readers import check_parallel, count_sentences, file_form, read_columns, read_parallel_columns
from xfast.io.tokens import LabelTypes, TokenColumns, from_sentences, ragged_range

__all__ = ["LabelTypes", "TokenColumns", "read_columns", "read_parallel_columns", "from_sentences",
           "conll_bytes", "file_form", "count_sentences", "check_parallel", "ragged_range"]
