#!/usr/bin/env bash
# Creates (or checks) the virtual environment of the Flower peer used by the horizontal-FL benchmark:
#   benchmarks/.flwr-venv   with flwr==1.41.0 and the same CPU torch as jointly.
# Flower lives apart from jointly's .venv because it pins its own grpcio/protobuf/cryptography ranges.
#
# Usage:  bash benchmarks/flower_setup.sh            # create or verify (idempotent)
#         bash benchmarks/flower_setup.sh --force    # delete and recreate
# Env:    FLWR_PYTHON=/path/to/python3.11          # interpreter to base the venv on (default: python3.11)
#         FLWR_VENV=/path/to/venv                  # venv location (default: benchmarks/.flwr-venv)
#
# Then:   benchmarks/.flwr-venv/bin/python benchmarks/_flower_peer.py --help
#
# The pins (Python 3.11, CPU only):
#   flwr[simulation]==1.41.0
#                    the peer under test (1.42.0 needs a certifi release newer than the index serves here).
#                    The benchmark runs Flower both ways: its local deployment (SuperLink and SuperNodes as
#                    separate processes on loopback) and its Simulation Runtime, which needs Ray:
#   ray==2.55.1      the Ray that flwr 1.41.0's `simulation` extra pins (CPU only).
#   torch==2.13.0    the same torch as jointly, so both sides train the very same model code.  Where a local
#                    CPU build is offered to pip (this machine's find-links) pip takes it; elsewhere PyPI's
#                    2.13.0 comes with its CUDA dependencies (several GB, still runs on CPU).
#   numpy==2.3.5     jointly's model helpers and the data split need numpy; pinned for reproducibility.
#   psutil==7.2.2    used by _flower_peer.py to measure the memory of the processes it starts.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${FLWR_VENV:-$here/.flwr-venv}"
py="${FLWR_PYTHON:-python3.11}"
pins=(
  "flwr[simulation]==1.41.0"
  "ray==2.55.1"
  "torch==2.13.0"
  "numpy==2.3.5"
  "psutil==7.2.2"
)
tag="flower_setup"
stem="flwr"
what="Flower"
pyvar="FLWR_PYTHON"
peer="$here/_flower_peer.py"

# What counts: the pinned versions import, and so do the Flower pieces the peer uses.
verify() {
  "$venv/bin/python" - <<'EOF'
import importlib.metadata as md
import numpy, psutil, ray, torch
import flwr
from flwr.simulation import run_simulation  # noqa: F401  (the Simulation Runtime, on Ray)
# what benchmarks/_flower_peer.py uses: the workflow API (the one with SecAgg+)
from flwr.client import ClientApp, NumPyClient  # noqa: F401
from flwr.client.mod import secaggplus_mod  # noqa: F401
from flwr.common.serde import recorddict_to_proto  # noqa: F401
from flwr.server import LegacyContext, ServerApp, ServerConfig  # noqa: F401
from flwr.server.strategy import FedAvg  # noqa: F401
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow  # noqa: F401
print(f"flwr {md.version('flwr')} | ray {ray.__version__} | numpy {numpy.__version__} | torch {torch.__version__} | psutil {psutil.__version__}")
EOF
  for exe in flower-superlink flower-supernode flwr; do
    [[ -x "$venv/bin/$exe" ]] || { echo "missing $venv/bin/$exe"; return 1; }
  done
}

# shellcheck source=benchmarks/_peer_venv.sh
source "$here/_peer_venv.sh"
peer_venv_main "$@"
