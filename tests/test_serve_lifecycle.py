"""xfast serve starts only where it should and stops in time: a port out of range and an
unguarded public address are usage errors (exit 2, one line), the API key may come from
XFAST_API_KEY, and on SIGTERM what is unfinished after --drain-timeout gets a JSON 503 with
Retry-After while the process exits 0 within a second of it. Every request goes to 127.0.0.1."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from tests._serve_helpers import Server, free_port
from xfast.errors import ParameterError
from xfast.serve.app import ServeSettings, serve

ROOT = Path(__file__).resolve().parents[1]



def test_a_port_out_of_range_is_a_usage_error():
    run = subprocess.run([sys.executable, "-m", "xfast", "serve", "--port", "99999"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("xfast: error: [E202] The 'port' parameter must be an integer from 0 to 65535")
    with pytest.raises(ParameterError, match="E202"):
        serve(ServeSettings(), port=-1)


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_host_workers_below_one_are_a_usage_error(workers):
    run = subprocess.run([sys.executable, "-m", "xfast", "serve", "--host-workers", workers], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("xfast: error: [E202] The '--host-workers' parameter must be a number > 0") \
        and workers in run.stderr, run.stderr


def test_a_public_address_needs_a_key_or_allow_unauthenticated(monkeypatch):
    ran = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: ran.append(sockets[0].getsockname()))
    with pytest.raises(ParameterError, match=r"\[E210\] refusing to serve on 0\.0\.0\.0 without an API key"):
        serve(ServeSettings(), host="0.0.0.0", port=0)
    assert not ran
    assert serve(ServeSettings(), host="0.0.0.0", port=0, allow_unauthenticated=True) == 0
    assert serve(ServeSettings(api_key="k"), host="0.0.0.0", port=0) == 0
    assert serve(ServeSettings(), host="localhost", port=0) == 0
    assert [a[0] for a in ran] == ["0.0.0.0", "0.0.0.0", "127.0.0.1"]
    with pytest.raises(ParameterError, match="'api_key'"):
        serve(ServeSettings(api_key="two words"), port=0)
    run = subprocess.run([sys.executable, "-m", "xfast", "serve", "--host", "0.0.0.0", "--port", "0"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "XFAST_API_KEY": ""})
    assert run.returncode == 2 and run.stderr.startswith("xfast: error: [E210]") and "Traceback" not in run.stderr


def test_the_cli_takes_the_key_and_limits(monkeypatch):
    import xfast.serve.app as app
    from xfast.cli import main

    seen = {}
    monkeypatch.setattr(app, "serve", lambda settings, **kw: seen.update(settings=settings, **kw) or 0)
    monkeypatch.setenv("XFAST_API_KEY", "from-the-environment")
    assert main(["serve", "--max-pairs", "9", "--max-sentence-words", "99", "--max-word-chars", "19",
                 "--drain-timeout", "4", "--allow-unauthenticated"]) == 0
    s = seen["settings"]
    assert (s.max_pairs, s.max_sentence_words, s.max_word_chars, s.drain_timeout) == (9, 99, 19, 4.0)
    assert s.api_key == "from-the-environment" and seen["allow_unauthenticated"] is True
    assert main(["serve", "--api-key", "from-the-option"]) == 0 and seen["settings"].api_key == "from-the-option"
    assert main(["serve", "--max-pairs", "0"]) == 2


_SLOW_SERVER = """
import sys
from tests._serve_helpers import StandIn
from xfast.serve.app import ServeSettings, serve
settings = ServeSettings(drain_timeout=float(sys.argv[2]), max_batch_tokens=2, max_wait_ms=1)
sys.exit(serve(settings, port=int(sys.argv[1]), projector=StandIn(seconds_per_pair=float(sys.argv[3]))))
"""


def test_sigterm_answers_what_is_unfinished_at_the_drain_timeout_with_a_json_503():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SERVER, str(port), "1.0", "20"], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "serving on http://127.0.0.1:" in proc.stderr.readline()
        client = Server.connect(port, seconds=5)
        results = []
        pair = {"labeled": ["a"], "receiving": ["b"]}
        calls = [lambda: client.call("/v1/project", {"pairs": [pair]}, timeout=60),  # in the model for 20 s
                 lambda: client.call("/v1/align", {"pairs": [pair]}, timeout=60)]  # waiting behind it
        threads = [threading.Thread(target=lambda c=c: results.append(c())) for c in calls]
        for t in threads:
            t.start()
            time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        answered = time.monotonic() - sent
        code = proc.wait(10)
        exited = time.monotonic() - sent
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [r[0] for r in results] == [503, 503], results
    for _, payload, headers in results:
        assert payload["detail"].startswith("[E211] the server is shutting down") and headers["retry-after"] == "1"
        assert headers["content-type"] == "application/json"
    assert 1.0 <= answered < 2.0 and code == 0 and exited < 2.0, (answered, exited)
    assert "Traceback" not in stderr and "CancelledError" not in stderr, stderr
    print(json.dumps({"answered_s": round(answered, 2), "exited_s": round(exited, 2)}))
