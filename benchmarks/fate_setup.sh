#!/usr/bin/env bash
# Creates (or checks) the virtual environment of the FATE peer used by the SecureBoost benchmark:
#   benchmarks/.fate-venv   with pyfate==2.2.0 (FATE 2.2.0) and the pins it needs to run here.
# It is separate from jointly's own .venv on purpose: FATE pins old numpy/pandas/pydantic/grpcio/...
#
# Usage:  bash benchmarks/fate_setup.sh            # create or verify (idempotent)
#         bash benchmarks/fate_setup.sh --force    # delete and recreate
# Env:    FATE_PYTHON=/path/to/python3.11          # interpreter to base the venv on (default: python3.11)
#         FATE_VENV=/path/to/venv                  # venv location (default: benchmarks/.fate-venv)
#
# Then:   benchmarks/.fate-venv/bin/python benchmarks/_fate_peer.py --help
#
# Why each pin (found by trying, Python 3.11, 2-core CPU-only machine):
#   pyfate==2.2.0    the peer under test (pure Python; hard-pins lmdb, pydantic 1, grpcio, protobuf, sklearn,
#                    transformers, mmh3 (built from source: needs a C compiler), ...; its native part is
#                    fate-utils, a cp311 manylinux wheel).
#   pandas==2.2.3    pyfate leaves pandas unpinned; pandas 3.x breaks FATE's federation: the host fails with
#                    "ValueError: Deserialization is restricted for class `pandas`.`Index`" (pandas 3 pickles
#                    Index under a module path missing from FATE's deserialization allowlist).
#   numpy==1.26.4    pyfate requires numpy<2; the last 1.x.
#   torch==2.13.0    pyfate leaves torch unpinned (FATE's histogram/tensor code imports it; nothing runs on a
#                    GPU).  Where a local CPU build (2.13.0+cpu) is offered to pip (this machine's find-links),
#                    pip takes it (~700 MB less and no nvidia-* wheels); elsewhere pip falls back to PyPI's
#                    2.13.0 with its CUDA dependencies (several GB, still runs on CPU).
#   psutil==7.2.2    used by _fate_peer.py to measure the peak RSS of the processes it starts.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${FATE_VENV:-$here/.fate-venv}"
py="${FATE_PYTHON:-python3.11}"
pins=(
  "pyfate==2.2.0"
  "pandas==2.2.3"
  "numpy==1.26.4"
  "torch==2.13.0"
  "psutil==7.2.2"
)
tag="fate_setup"
stem="fate"
what="FATE"
pyvar="FATE_PYTHON"
peer="$here/_fate_peer.py"

# The check that counts: the pinned versions import and FATE's SecureBoost + launcher load.
verify() {
  "$venv/bin/python" - <<'EOF'
import importlib.metadata as md
import fate, numpy, pandas, torch, psutil
from fate.ml.ensemble import HeteroSecureBoostGuest, HeteroSecureBoostHost  # noqa: F401
from fate.arch.launchers.multiprocess_launcher import MultiProcessLauncher  # noqa: F401
from fate.arch.launchers.context_helper import init_context  # noqa: F401
import fate_utils  # noqa: F401  (native Paillier etc.)
print(f"fate {fate.__version__} | pyfate {md.version('pyfate')} | numpy {numpy.__version__} | "
      f"pandas {pandas.__version__} | torch {torch.__version__} | psutil {psutil.__version__}")
EOF
}

# shellcheck source=benchmarks/_peer_venv.sh
source "$here/_peer_venv.sh"
peer_venv_main "$@"
