"""Vertical SecureBoost at scale: a generated 1M-row, 40-feature set (20 features each side), 3 trees of depth 3.

    python benchmarks/vertical_1m.py [--quick] [--datasets synthetic_1m] [--key-bits 2048]

The same measurement as ``benchmarks/vertical.py`` (jointly's guest and host node processes over
loopback mutual-TLS gRPC, PSI alignment of the 1M ids included, against plaintext XGBoost on the same
split), in its own script and results file because it takes far longer than the rest; the goal it
checks is memory (``peak_mb``: the largest sum, sampled every second, of the proportional set sizes of
every node process and its worker processes) under 16 GiB.
FATE is not run at this size.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vertical import SCALE, main

if __name__ == "__main__":
    main("vertical_1m", SCALE, quick=("synthetic_1m",))
