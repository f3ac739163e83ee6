import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = str(ROOT / "tests")
sys.path.insert(0, TESTS)
# Ray workers inherit the environment: let them import the test-only engine too.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH", "")) if p)
# Matplotlib writes a font cache under ~/.cache unless told otherwise; keep it in the tree.
os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".cache" / "matplotlib"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Test clusters are the test's own nodes on this machine: no token auth between them and drivers.
os.environ["RAY_AUTH_MODE"] = "disabled"
