"""xfast.models: the model runtime (registry, cache, export, encoder, tagger, translator).

ONNX Runtime, torch and CTranslate2 may share one process; their OpenMP threads must wait
passively or they spin against each other, so the policy is set before any of them loads.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
