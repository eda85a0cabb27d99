"""Test-session set-up shared by tests/ and benchmarks/.

Environment first: no hub access, and OpenMP threads that wait passively so torch, ONNX
Runtime and CTranslate2 can share one process without spinning against each other.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

pytest_plugins = ["tests.fixtures_models", "tests._simd"]
