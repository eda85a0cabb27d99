"""What the Ray tests share: whether this machine can run them (Ray, and a network namespace that
holds only loopback), and the command that runs xfast inside such a namespace."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

__all__ = ["needs_ray", "netns_cmd", "netns_ok", "has_ray"]


def netns_ok() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True).returncode == 0


def has_ray() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


needs_ray = pytest.mark.skipif(not (has_ray() and netns_ok()),
                               reason="needs ray[data] and a loopback-only network namespace (unshare -rn)")


def netns_cmd(args: list[str]) -> list[str]:
    """``xfast ARGS`` inside a new network namespace whose only interface is loopback."""
    return ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, "-m", "xfast", *args]
