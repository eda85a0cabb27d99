"""xfast serve: one request never harms another. Every field is checked before a request is
queued (the same rules as xfast.Projector), a failure inside a batch fails only its request,
sizes are bounded, large requests are split, /v1/align is queued too, bodies that are not
JSON are refused with 413/415/422, and an API key guards every endpoint but the probes.
Every request goes to 127.0.0.1."""

import http.client
import json
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from tests._serve_helpers import PAIR, Server, StandIn
from xfast.errors import FieldError
from xfast.project.config import ProjectionConfig
from xfast.serve.app import ServeSettings
from xfast.serve.projector import Projector


@pytest.fixture(scope="module")
def projector(tiny_models):
    return Projector({"model": str(tiny_models["xlmr"]), "layer": 2})


@pytest.fixture(scope="module")
def server(projector):
    with Server(projector, ServeSettings(max_wait_ms=50)) as s:
        yield s


def _concurrently(calls: list) -> list:
    """Run the thunks at once; their results in order."""
    out = [None] * len(calls)

    def go(k):
        out[k] = calls[k]()

    threads = [threading.Thread(target=go, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def _loc(payload: dict) -> list:
    return payload["detail"][0]["loc"]


@pytest.mark.parametrize("bad,field", [
    (b'"length_ratio": Infinity', "length_ratio"),
    (b'"merge_distance": 9223372036854775808', "merge_distance"),
])
def test_a_bad_request_does_not_poison_the_good_ones_beside_it(server, projector, bad, field):
    good = json.dumps({"pairs": [PAIR], "method": "heuristic"}).encode()
    poisoned = good[:-1] + b", " + bad + b"}"
    bodies = [good] * 6 + [poisoned] + [good] * 6
    got = _concurrently([lambda b=b: server.call("/v1/project", raw=b) for b in bodies])
    assert [code for code, _, _ in got] == [200] * 6 + [422] + [200] * 6
    assert _loc(got[6][1]) == ["body", field] and "E321" in got[6][1]["detail"][0]["msg"]
    want = projector.project(PAIR["labeled"], [tuple(e) for e in PAIR["entities"]], PAIR["receiving"])
    assert all(body["results"][0]["labels"] == want.labels for _, body, _ in got[:6] + got[7:])


def test_a_failure_inside_a_batch_fails_only_its_request():
    stand_in = StandIn(seconds_per_pair=0.01)
    with Server(stand_in, ServeSettings(max_wait_ms=50)) as s:
        poison = {**PAIR, "labeled": ["poison", "pill"], "entities": []}
        bodies = [{"pairs": [PAIR]}] * 6 + [{"pairs": [poison]}] + [{"pairs": [PAIR, PAIR]}] * 6
        got = _concurrently([lambda b=b: s.call("/v1/project", b) for b in bodies])
        assert [code for code, _, _ in got] == [200] * 6 + [500] + [200] * 6
        assert got[6][1]["detail"].startswith("[E322]") and "RuntimeError" in got[6][1]["detail"]
        assert [len(body["results"]) for _, body, _ in got[:6] + got[7:]] == [1] * 6 + [2] * 6
        assert s.call("/healthz")[0] == 200


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("body,loc", [
    ('{"pairs": [{"labeled": ["a", "\\ud800"], "receiving": ["b"]}]}', ["pairs", 0, "labeled", 1]),
    ('{"pairs": [{"labeled": ["a"], "entities": [[0, 1, "P\\udfff"]], "receiving": ["b"]}]}',
     ["pairs", 0, "entities", 0, 2]),
    ('{"pairs": [{"labeled": ["a"], "entities": [[0, 1, "B-PER"]], "receiving": ["b"]}]}',
     ["pairs", 0, "entities", 0, 2]),
    ('{"pairs": [{"labeled": ["a"], "entities": [[0, 1, "PE\\u0007R"]], "receiving": ["b"]}]}',
     ["pairs", 0, "entities", 0, 2]),
    ('{"pairs": [{"labeled": ["a"], "entities": [[0, 1, "' + "X" * 65 + '"]], "receiving": ["b"]}]}',
     ["pairs", 0, "entities", 0, 2]),
    ('{"pairs": [{"labeled": ["a", "b", "c"], "entities": [[0, 2, "PER"], [1, 3, "LOC"]], "receiving": ["b"]}]}',
     ["pairs", 0, "entities", 1]),
    ('{"pairs": [{"labeled": ["a", "b"], "entities": [[false, true, "ORG"]], "receiving": ["b"]}]}',
     ["pairs", 0, "entities", 0, 0]),
    ('{"pairs": [{"labeled": ["a", "b"], "entities": [["0", "1", "ORG"]], "receiving": ["b"]}]}',
     ["pairs", 0, "entities", 0, 0]),
    ('{"pairs": [{"labeled": ["a"], "receiving": ["b"]}], "method": "ngram-greedy", "min_words": 3, "max_words": 2}',
     ["min_words"]),
    ('{"pairs": [{"labeled": ["a"], "receiving": ["b"]}], "length_ratio": 7}', ["length_ratio"]),
    ('{"pairs": [{"labeled": ["a"], "receiving": ["b"]}], "length_ratio": NaN}', ["length_ratio"]),
    ('{"pairs": [{"labeled": ["a"], "receiving": ["b"]}], "max_words": 2147483648}', ["max_words"]),
    ('{"pairs": [{"labeled": ["a", " "], "receiving": ["b"]}]}', ["pairs", 0, "labeled", 1]),
    ('{"pairs": [{"labeled": ["a"], "receiving": [""]}]}', ["pairs", 0, "receiving", 0]),
])
def test_values_the_server_refuses_are_422_naming_the_field(server, body, loc):
    code, payload, _ = server.call("/v1/project", raw=_raw(body))
    assert code == 422, payload
    assert _loc(payload) == ["body", *loc], payload


@pytest.mark.parametrize("pair,kwargs,loc", [
    ((["a", "\ud800"], [], ["b"]), {}, ("pairs", 0, "labeled", 1)),
    ((["a"], [(0, 1, "\udfffX")], ["b"]), {}, ("pairs", 0, "entities", 0, 2)),
    ((["a"], [(0, 1, "B-PER")], ["b"]), {}, ("pairs", 0, "entities", 0, 2)),
    ((["a"], [(0, 1, "P\nER")], ["b"]), {}, ("pairs", 0, "entities", 0, 2)),
    ((["a", "b", "c"], [(1, 3, "LOC"), (0, 2, "PER")], ["b"]), {}, ("pairs", 0, "entities", 1)),
    ((["a", "\t"], [], ["b"]), {}, ("pairs", 0, "labeled", 1)),
    ((["a"], [], ["b"]), {"config": ProjectionConfig(min_words=3, max_words=2)}, ("config", "min_words")),
    ((["a"], [], ["b"]), {"config": ProjectionConfig(length_ratio=1.5)}, ("config", "length_ratio")),
    ((["a"], [], ["b"]), {"config": ProjectionConfig(length_ratio=float("inf"))}, ("config", "length_ratio")),
    ((["a"], [], ["b"]), {"config": ProjectionConfig(merge_distance=2**63)}, ("config", "merge_distance")),
])
def test_the_python_api_refuses_the_same_values(projector, pair, kwargs, loc):
    with pytest.raises(FieldError) as err:
        projector.project(*pair, **kwargs)
    assert err.value.loc == loc and str(err.value).startswith(f"[{err.value.code}] {err.value.field}")


def test_lone_surrogates_in_align_are_refused_by_both(server, projector):
    code, payload, _ = server.call("/v1/align", raw=_raw('{"pairs": [{"labeled": ["a"], "receiving": ["\\udc00"]}]}'))
    assert code == 422 and _loc(payload) == ["body", "pairs", 0, "receiving", 0]
    with pytest.raises(FieldError, match=r"\[E305\] pairs\[0\]\.receiving\[0\]: holds a lone surrogate"):
        projector.align_batch([(["a"], ["\udc00"])])


def test_sizes_over_the_limits_are_422_naming_the_limit():
    with Server(StandIn(), ServeSettings(max_pairs=3, max_sentence_words=4, max_word_chars=5)) as s:
        cases = [({"pairs": [PAIR] * 4}, ["pairs"], "--max-pairs"),
                 ({"pairs": [{"labeled": ["a"] * 5, "receiving": ["b"]}]}, ["pairs", 0, "labeled"],
                  "--max-sentence-words"),
                 ({"pairs": [{"labeled": ["a"], "receiving": ["b", "abcdef"]}]}, ["pairs", 0, "receiving", 1],
                  "--max-word-chars")]
        for path in ("/v1/project", "/v1/align"):
            for body, loc, option in cases:
                if path == "/v1/align":
                    body = {"pairs": [{"labeled": p["labeled"], "receiving": p["receiving"]} for p in body["pairs"]]}
                code, payload, _ = s.call(path, body)
                assert code == 422 and _loc(payload) == ["body", *loc], payload
                assert "[E320]" in payload["detail"][0]["msg"] and option in payload["detail"][0]["msg"]
        assert s.call("/v1/project", {"pairs": [PAIR] * 3})[0] == 422  # PAIR has 6 words: over 4
        assert s.call("/v1/project", {"pairs": [{"labeled": ["a"] * 4, "receiving": ["abcde"]}] * 3})[0] == 200


def test_a_large_request_is_split_and_a_small_one_is_not_held_behind_it():
    stand_in = StandIn(seconds_per_pair=0.05)
    big = {"pairs": [{"labeled": ["w"] * 5, "receiving": ["x"] * 5}] * 24}  # 240 words
    small = {"pairs": [{"labeled": ["small"], "receiving": ["one"]}]}
    with Server(stand_in, ServeSettings(max_batch_tokens=40, max_wait_ms=1)) as s:
        order = []

        def send(body, name):
            code = s.call("/v1/project", body)[0]
            order.append((name, code))

        first = threading.Thread(target=send, args=(big, "big"))
        first.start()
        while not stand_in.calls:  # the big request's first batch is in the model
            time.sleep(0.001)
        send(small, "small")
        first.join(60)
    assert order == [("small", 200), ("big", 200)]
    assert all(sum(len(p[0]) + len(p[2]) for p in call) <= 40 for call in stand_in.calls)
    small_call = next(k for k, call in enumerate(stand_in.calls) if any(p[0] == ["small"] for p in call))
    assert small_call <= 1, [len(c) for c in stand_in.calls]


def test_align_is_queued_counted_and_bounded_by_max_queue():
    stand_in = StandIn(seconds_per_pair=0.3)
    body = {"pairs": [{"labeled": ["a"], "receiving": ["b"]}]}
    with Server(stand_in, ServeSettings(max_queue=1)) as s:
        got = []

        def client():
            got.append(s.call("/v1/align", body))

        threads = []
        for _ in range(6):
            threads.append(threading.Thread(target=client))
            threads[-1].start()
            while not stand_in.calls:  # the first request is in the model
                time.sleep(0.001)
        for t in threads:
            t.join(60)
        metrics = s.call("/metrics")[1]
    codes = sorted(code for code, _, _ in got)
    assert codes.count(200) >= 2 and 503 in codes and set(codes) <= {200, 503}
    refused = next(r for r in got if r[0] == 503)
    assert refused[2]["retry-after"] == "1" and "queue is full" in refused[1]["detail"]
    assert "xfast_queue_depth" in metrics and 'xfast_requests_total{path="/v1/align",status="503"}' in metrics
    assert float(metrics.split("xfast_batch_pairs_count ")[1].split()[0]) == codes.count(200)


def _chunked(port: int, path: str, chunks: list[bytes], content_type: str = "application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=iter(chunks), headers={"Content-Type": content_type},
                     encode_chunked=True)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_bodies_that_are_not_json_requests_are_413_415_or_422():
    with Server(StandIn(), ServeSettings(max_request_bytes=10_000)) as s:
        code, payload = _chunked(s.port, "/v1/project", [b'{"pairs": ['] + [b" " * 1000] * 12 + [b"]}"])
        assert code == 413 and payload["detail"].startswith("[E214]")  # no Content-Length: streamed
        code, payload = _chunked(s.port, "/v1/align", [b'{"pairs": []}'])
        assert code == 200 and payload == {"results": []}
        for media in ("text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data"):
            code, payload, _ = s.call("/v1/project", raw=b'{"pairs": []}', headers={"Content-Type": media})
            assert code == 415 and payload["detail"].startswith("[E212]"), (media, payload)
        raw = b'{"pairs": [{"labeled": ["\xff"]}]}'
        code, payload, _ = s.call("/v1/project", raw=raw)
        assert code == 422 and _loc(payload) == ["body", raw.index(b"\xff")]
        assert "not UTF-8" in payload["detail"][0]["msg"]
        raw = b'{"pairs": ' + b"[" * 3000 + b"]" * 3000 + b"}"
        code, payload, _ = s.call("/v1/project", raw=raw)
        assert code == 422 and _loc(payload) == ["body", raw.index(b"[") + 31]  # the 33rd level
        assert "nested more than 32 deep" in payload["detail"][0]["msg"]
        deep_in_a_string = {"pairs": [{"labeled": ["[" * 100], "receiving": ["{" * 100]}]}
        assert s.call("/v1/project", deep_in_a_string)[0] == 200
        assert s.call("/healthz")[0] == 200


def test_an_api_key_guards_every_endpoint_but_the_probes():
    key = "k3y-for-the-tests"
    with Server(StandIn(), ServeSettings(api_key=key)) as s:
        right = {"Authorization": f"Bearer {key}"}
        for path in ("/healthz", "/readyz"):
            assert s.call(path)[0] == 200
        for path, body in (("/v1/project", {"pairs": [PAIR]}), ("/v1/align", {"pairs": []}),
                           ("/metrics", None), ("/openapi.json", None), ("/docs", None)):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": key}):
                code, payload, heads = s.call(path, body, headers=headers)
                assert code == 401 and heads["www-authenticate"].startswith("Bearer"), (path, headers)
                assert payload["detail"].startswith("[E213]")
            assert s.call(path, body, headers=right)[0] == 200, path
        assert s.call("/v1/project", {"pairs": []}, headers={"Authorization": f"bearer {key}"})[0] == 200
