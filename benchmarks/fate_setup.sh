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
stamp="$venv/.jointly-fate-pins"
want="$(printf '%s\n' "${pins[@]}")"

say() { printf '[fate_setup] %s\n' "$*"; }
die() { printf '[fate_setup] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ "${1:-}" == "--force" ]]; then
  say "--force: removing $venv"
  rm -rf "$venv"
elif [[ $# -gt 0 ]]; then
  die "unknown argument: $1 (only --force is accepted)"
fi

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

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  if versions="$(verify 2>&1)"; then
    say "already set up, nothing to do: $venv"
    say "$versions"
    exit 0
  fi
  say "existing venv failed its check, reinstalling pins:"
  printf '%s\n' "$versions" | tail -5 >&2
fi

if [[ ! -x "$venv/bin/python" ]]; then
  command -v "$py" >/dev/null 2>&1 || die "no '$py' on PATH; set FATE_PYTHON to a Python 3.11 interpreter"
  pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
    || die "'$py' does not run"
  [[ "$pyver" == "3.11" ]] || say "WARNING: $py is Python $pyver; this setup was verified with 3.11 only"
  say "creating venv $venv with $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  "$py" -m venv "$venv" || die "'$py -m venv $venv' failed (Debian: apt-get install python3.11-venv)"
else
  say "reusing venv $venv ($("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
fi

say "installing: ${pins[*]}"
say "(first time: downloads ~1 GB with the local CPU torch, several GB without; takes a few minutes)"
log="$venv/.jointly-fate-pip.log"
if ! "$venv/bin/python" -m pip install --no-input "${pins[@]}" >"$log" 2>&1; then
  grep -v "^WARNING: Location 'file:" "$log" | tail -25 >&2
  die "pip install failed (full log: $log)"
fi
"$venv/bin/python" -m pip check >>"$log" 2>&1 || say "WARNING: 'pip check' reports conflicts (see $log); continuing, the import check decides"

if ! versions="$(verify 2>&1)"; then
  printf '%s\n' "$versions" | tail -20 >&2
  die "FATE does not import in $venv (see above)"
fi
printf '%s\n' "$want" >"$stamp"
"$venv/bin/python" -m pip freeze >"$venv/.jointly-fate-freeze.txt" 2>/dev/null || true
say "done: $venv"
say "$versions"
say "full list of installed versions: $venv/.jointly-fate-freeze.txt"
say "run: $venv/bin/python $here/_fate_peer.py --help"
