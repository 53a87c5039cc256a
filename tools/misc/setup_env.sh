#!/usr/bin/env bash
# Builds a test lane's virtualenv. Idempotent: every step checks whether it is already done, so a
# second run only verifies.
#
#   tools/misc/setup_env.sh               main lane, .venv: the pinned development stack
#                                         (requirements/constraints.txt): torch 2.13 CPU, mmcv
#                                         2.1.0 with compiled ops, mmdet, mmseg, test tools
#   LANE=compat tools/misc/setup_env.sh   second lane, .venv-compat: the users' stack at the oldest
#                                         versions mmdcls admits (requirements/compat.txt): torch
#                                         2.1.2, numpy<2, mmengine 0.10.7, mmcv 2.1.0 without ops
#                                         (mmcv-lite), mmpretrain 1.2.0, dcls 0.1.1
#
# VENV overrides the lane's directory, PYTHON the interpreter (python3.11).
#
# The slow step is the main lane's mmcv 2.1.0 with compiled ops, built from the PyPI sdist (no
# wheel exists for torch 2.13): about 17 minutes on 2 cores the first time; pip caches the built
# wheel afterwards. The compat lane never builds mmcv (see requirements/compat.txt), so pip's
# wheel cache, which keys a built wheel by its sdist URL and the interpreter only, holds only the
# main lane's ops build. The compat lane takes about 2 minutes, most of it torch's download.
set -euo pipefail

cd "$(dirname "$0")/../.."
LANE=${LANE:-main}
case "$LANE" in
    main) VENV=${VENV:-.venv} ;;
    compat) VENV=${VENV:-.venv-compat} ;;
    *) echo "setup_env: LANE must be 'main' or 'compat', got '$LANE'" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3.11}
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check"
CONSTRAINTS=requirements/constraints.txt
JOBS=$(nproc)
T0=$(date +%s)

step() { echo "[setup_env $LANE $(( $(date +%s) - T0 ))s] $*"; }

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

pinned() {  # pinned NAME FILE: the exact version FILE pins NAME to
    sed -n "s/^$1==\([^ #]*\).*/\1/p" "$2"
}

requirements_met() {  # requirements_met PINS FILE...: each FILE's lines installed and satisfied,
                      # every pin of PINS that is installed at its version, mmdcls importable
    $PY - "$@" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement


def lines(path):
    for line in open(path):
        line = line.split('#', 1)[0].strip()
        if line:
            yield line


def installed(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None


unmet = []
pins, required = sys.argv[1], sys.argv[2:]
for path in required:
    for line in lines(path):
        req = Requirement(line)
        have = installed(req.name)
        if have is None:
            unmet.append(line)
        elif not req.specifier.contains(have, prereleases=True):
            unmet.append(f'{line} (installed {have})')
for line in lines(pins):
    req = Requirement(line)
    have = installed(req.name)
    if have is not None and not req.specifier.contains(have, prereleases=True):
        unmet.append(f'{line} (installed {have}, pinned in {pins})')
try:
    import mmdcls  # noqa: F401
except ImportError as err:
    unmet.append(f'mmdcls ({err})')
if unmet:
    print('setup_env: missing or outdated: ' + ', '.join(unmet))
sys.exit(1 if unmet else 0)
PYEOF
}

if [ "$LANE" = compat ]; then
    if ! requirements_met requirements/compat.txt requirements/compat.txt 2>/dev/null; then
        step "installing the compat lane: $(grep -v '^#' requirements/compat.txt | xargs)"
        t=$(date +%s)
        pip_quiet --upgrade pip
        pip_quiet -r requirements/build.txt
        pip_quiet -r requirements/compat.txt
        # --no-deps: mmdcls declares mmcv, which this lane has as mmcv-lite (same package)
        pip_quiet --no-build-isolation --no-deps -e .
        step "compat lane installed in $(( $(date +%s) - t ))s"
    fi
    $PY -c "import mmcv, mmcv.cnn, torch, mmdcls; print('setup_env: torch', torch.__version__, \
'mmcv', mmcv.__version__, '(no compiled ops)')"
    step "environment complete"
    $PY -m mmdcls.utils.collect_env
    exit 0
fi

TORCH=$(pinned torch "$CONSTRAINTS")
MMCV=$(pinned mmcv "$CONSTRAINTS")
if ! $PY -c "import torch, setuptools, sys; v=tuple(map(int, setuptools.__version__.split('.')[:2])); \
sys.exit(torch.__version__.split('+')[0] != '$TORCH' or not ((77, 0) <= v < (82, 0)))" 2>/dev/null; then
    step "installing build tools and torch $TORCH (CPU build)"
    pip_quiet --upgrade pip
    pip_quiet -c "$CONSTRAINTS" -r requirements/build.txt
    pip_quiet -c "$CONSTRAINTS" torch
fi

# The compat lane's mmcv is the separate `mmcv-lite` distribution, so a cached wheel of it can
# never stand in for this build; this check also refuses any ops-less mmcv.
if ! $PY -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV'; from mmcv.ops import nms" 2>/dev/null; then
    # mmcv's own requirements first, so that the --no-build-isolation build finds them.
    pip_quiet -c "$CONSTRAINTS" mmengine addict packaging Pillow pyyaml yapf opencv-python numpy
    log="$VENV/mmcv-build.log"
    step "building mmcv $MMCV with compiled ops (MMCV_WITH_OPS=1, MAX_JOBS=$JOBS); about 17 min on" \
         "2 cores the first time, seconds once pip has cached the wheel; log: $log"
    t=$(date +%s)
    if ! MMCV_WITH_OPS=1 MAX_JOBS=$JOBS FORCE_CUDA=0 $PIP install -v --no-build-isolation \
            -c "$CONSTRAINTS" "mmcv==$MMCV" >"$log" 2>&1; then
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

MAIN_REQUIREMENTS="requirements/runtime.txt requirements/det.txt requirements/seg.txt requirements/tests.txt requirements/lint.txt"
if ! requirements_met "$CONSTRAINTS" $MAIN_REQUIREMENTS; then
    step "installing mmdet, mmsegmentation, test and lint requirements and mmdcls (editable)"
    pip_quiet -c "$CONSTRAINTS" $(printf -- '-r %s ' $MAIN_REQUIREMENTS)
    pip_quiet --no-build-isolation --no-deps -e .
fi

step "environment complete"
$PY -m mmdcls.utils.collect_env
