"""Schemathesis hooks for tests/test_serve_tools.py (loaded through SCHEMATHESIS_HOOKS).

The OpenAPI document of ``xfast serve`` states every rule JSON Schema can express; three it
cannot: an entity's span lies within its labeled sentence, entities do not overlap, and
``min_words`` is at most a non-zero ``max_words`` (the server refuses those with a 422 naming
the field, as docs/serve.md says). For requests meant to be valid (positive mode) these hooks
make the generated body keep those rules too, so Schemathesis checks that every other valid
request is accepted; requests meant to be invalid are left as generated.
"""

import schemathesis


@schemathesis.hook
def map_case(context, case):
    meta = getattr(case, "meta", None)
    body = case.body
    if meta is None or not meta.generation.mode.is_positive or not isinstance(body, dict):
        return case
    for pair in body.get("pairs") or []:
        if isinstance(pair, dict) and isinstance(pair.get("entities"), list):
            pair["entities"] = _kept(pair["entities"], len(pair.get("labeled") or []))
    low, high = body.get("min_words"), body.get("max_words")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and high and low > high:
        body["min_words"], body["max_words"] = high, low
    return case


def _kept(entities: list, n: int) -> list:
    """The entities that lie within ``n`` words and do not overlap an earlier kept one."""
    kept, taken = [], set()
    for e in entities:
        if not (isinstance(e, list) and len(e) == 3):
            kept.append(e)
            continue
        start, end = e[0], e[1]
        if not (0 <= start < end <= n) or taken & set(range(int(start), int(end))):
            continue
        taken |= set(range(int(start), int(end)))
        kept.append(e)
    return kept
