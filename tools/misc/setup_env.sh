#!/usr/bin/env bash
# Builds the project virtualenv (.venv) with the pinned OpenMMLab stack.
#
# Idempotent: every step checks whether it is already done, so a second run only verifies.
# The slow step is mmcv 2.1.0 with compiled ops, built from the PyPI sdist (no wheel exists for
# torch 2.13): about 15 minutes on 2 cores the first time; pip caches the built wheel afterwards.
set -euo pipefail

cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check"
JOBS=$(nproc)
T0=$(date +%s)

step() { echo "[setup_env $(( $(date +%s) - T0 ))s] $*"; }

if [ ! -x "$PY" ]; then
    step "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi

pip_quiet() {  # pip install, quiet on success, full log on failure
    local log="$VENV/pip-last.log"
    if ! $PIP install "$@" >"$log" 2>&1; then
        cat "$log"
        echo "setup_env: pip install $* failed (log above)" >&2
        exit 1
    fi
}

if ! $PY -c "import torch, setuptools, sys; v=tuple(map(int, setuptools.__version__.split('.')[:2])); \
sys.exit(torch.__version__.split('+')[0] != '2.13.0' or not ((77, 0) <= v < (82, 0)))" 2>/dev/null; then
    step "installing build tools and torch 2.13.0 (CPU build)"
    pip_quiet --upgrade pip
    pip_quiet -r requirements/build.txt
    pip_quiet torch==2.13.0
fi

if ! $PY -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'; from mmcv.ops import nms" 2>/dev/null; then
    # mmcv's own requirements first, so that the --no-build-isolation build finds them.
    pip_quiet mmengine==0.10.7 addict packaging Pillow pyyaml yapf opencv-python numpy
    log="$VENV/mmcv-build.log"
    step "building mmcv 2.1.0 with compiled ops (MMCV_WITH_OPS=1, MAX_JOBS=$JOBS); about 15 min on 2 cores" \
         "the first time, seconds once pip has cached the wheel; log: $log"
    t=$(date +%s)
    if ! MMCV_WITH_OPS=1 MAX_JOBS=$JOBS FORCE_CUDA=0 $PIP install -v --no-build-isolation mmcv==2.1.0 >"$log" 2>&1; then
        echo "---- compiler / pip errors from $log ----" >&2
        grep -n -E "error:|Error:|error [A-Z][0-9]+|FAILED" "$log" | head -40 >&2 || true
        echo "---- last lines of $log ----" >&2
        tail -40 "$log" >&2
        echo "setup_env: the mmcv build failed; see the compiler errors above" >&2
        exit 1
    fi
    step "mmcv built in $(( $(date +%s) - t ))s"
    $PY -c "from mmcv.ops import nms, RoIAlign" || { echo "setup_env: mmcv installed but its compiled ops do not load" >&2; exit 1; }
fi

requirements_met() {  # every pin of runtime.txt and tests.txt installed, mmdcls importable
    $PY - <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement

unmet = []
for path in ('requirements/runtime.txt', 'requirements/tests.txt'):
    for line in open(path):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            unmet.append(line)
            continue
        if not req.specifier.contains(installed, prereleases=True):
            unmet.append(f'{line} (installed {installed})')
try:
    import mmdcls  # noqa: F401
except ImportError as err:
    unmet.append(f'mmdcls ({err})')
if unmet:
    print('setup_env: missing or outdated: ' + ', '.join(unmet))
sys.exit(1 if unmet else 0)
PYEOF
}

if ! requirements_met; then
    step "installing mmdet, mmsegmentation, test requirements and mmdcls (editable)"
    pip_quiet -r requirements/runtime.txt -r requirements/tests.txt
    pip_quiet --no-build-isolation --no-deps -e .
fi

step "environment complete"
$PY -m mmdcls.utils.collect_env
