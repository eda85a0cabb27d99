"""xfast serve as outside tools see it: Schemathesis finds no failure with every check on,
openapi-spec-validator accepts the OpenAPI document, which declares real response schemas,
the refusals and the limits the server enforces, and prometheus_client parses /metrics.
Every request goes to 127.0.0.1."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from tests._serve_helpers import PAIR, Server, StandIn
from xfast.serve.app import ServeSettings
from xfast.serve.projector import Projector

ROOT = Path(__file__).resolve().parents[1]
LIMITS = ServeSettings(max_pairs=8, max_sentence_words=40, max_word_chars=20, max_wait_ms=1)


def _doc(server: Server, headers: dict | None = None) -> dict:
    code, doc, _ = server.call("/openapi.json", headers=headers)
    assert code == 200
    return doc


def test_the_openapi_document_is_valid_and_says_what_the_server_answers():
    validator = pytest.importorskip("openapi_spec_validator")
    with Server(StandIn(), LIMITS) as s:
        doc = _doc(s)
    validator.validate(doc)
    paths = doc["paths"]
    for path, method in (("/healthz", "get"), ("/readyz", "get"), ("/v1/project", "post"), ("/v1/align", "post")):
        schema = paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema.get("$ref"), (path, schema)  # a model, not {}
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    for path in ("/v1/project", "/v1/align"):
        assert {"200", "401", "413", "415", "422", "503"} <= set(paths[path]["post"]["responses"])
    assert "Retry-After" in paths["/v1/project"]["post"]["responses"]["503"]["headers"]
    parts = doc["components"]["schemas"]
    request, pair = parts["ProjectRequest"]["properties"], parts["PairIn"]["properties"]
    assert request["pairs"]["maxItems"] == 8 and parts["AlignRequest"]["properties"]["pairs"]["maxItems"] == 8
    assert request["method"]["enum"] == ["heuristic", "ngram-greedy", "ngram-bipartite"]
    assert (request["length_ratio"]["exclusiveMinimum"], request["length_ratio"]["maximum"]) == (0, 1)
    assert request["merge_distance"]["minimum"] == 0 and request["min_words"]["minimum"] == 1
    for side in ("labeled", "receiving"):
        assert pair[side]["minItems"] == 1 and pair[side]["maxItems"] == 40
        assert pair[side]["items"]["maxLength"] == 20 and pair[side]["items"]["pattern"]
    start, end, label = pair["entities"]["items"]["prefixItems"]
    assert (start["minimum"], end["minimum"], end["maximum"]) == (0, 1, 40)
    assert label["maxLength"] == 64 and label["pattern"].startswith("^(?![BI]-)")
    assert "securitySchemes" not in doc["components"]


def test_with_an_api_key_the_document_says_which_operations_need_it():
    with Server(StandIn(), ServeSettings(api_key="secret")) as s:
        doc = _doc(s, {"Authorization": "Bearer secret"})
    assert doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            assert ("security" in operation) == (path not in ("/healthz", "/readyz")), path


def test_metrics_parse_with_prometheus_client_and_latency_buckets_reach_a_minute():
    from prometheus_client.parser import text_string_to_metric_families

    with Server(StandIn(), LIMITS) as s:
        assert s.call("/v1/project", {"pairs": [PAIR] * 3})[0] == 200
        assert s.call("/v1/align", {"pairs": [{"labeled": ["a"], "receiving": ["b"]}]})[0] == 200
        code, text, headers = s.call("/metrics")
    assert code == 200 and headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"xfast_requests", "xfast_request_seconds", "xfast_batch_pairs", "xfast_queue_depth"} <= set(families)
    bounds = {float(s.labels["le"]) for s in families["xfast_request_seconds"].samples if "le" in s.labels}
    assert max(b for b in bounds if b != float("inf")) >= 60
    sizes = [s for s in families["xfast_batch_pairs"].samples if s.name == "xfast_batch_pairs_sum"]
    assert sizes[0].value == 4  # three project pairs and one align pair, each in its own call


_CONFIG = """
# a body over --max-request-bytes is refused with 413 whatever its content: JSON Schema cannot
# bound a whole body's size, so 413 is a rightful answer to valid and invalid requests alike
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "413"]
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428"]
"""


def test_schemathesis_finds_no_failure_with_every_check(tmp_path, tiny_models):
    """About 15 s: 25 examples per operation, a fixed seed, a tiny model, small limits (so small
    bodies); the run is cut at 60 s."""
    if subprocess.run([sys.executable, "-c", "import schemathesis"], capture_output=True).returncode:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    projector = Projector({"model": str(tiny_models["xlmr"]), "layer": 2})
    (tmp_path / "schemathesis.toml").write_text(_CONFIG)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "SCHEMATHESIS_HOOKS": "tests._schemathesis_hooks", "NO_COLOR": "1"}
    with Server(projector, LIMITS) as s:
        url = f"http://127.0.0.1:{s.port}/openapi.json"
        t = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(tmp_path / "schemathesis.toml"),
             "run", url, "--checks", "all", "--max-examples", "25", "--seed", "7", "--workers", "1",
             "--generation-database", "none", "--request-timeout", "30", "--output-truncate", "true"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert s.call("/healthz")[0] == 200  # still serving
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout or " passed" in run.stdout, run.stdout[-3000:]
    print(json.dumps({"schemathesis_seconds": round(time.monotonic() - t, 1)}))
