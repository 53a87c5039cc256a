# The README's commands: `make test`, `make demo` and `make lint`. Each builds .venv on first use.
#
# Two test lanes:
#   main   (.venv, `make env`):                the pinned development stack: torch 2.13 CPU, mmcv
#                                              2.1.0 with compiled ops, mmdet 3.3, mmseg 1.2;
#                                              the whole suite
#   compat (.venv-compat, `make env-compat`):  the users' stack at the oldest admitted versions:
#                                              torch 2.1.2, numpy<2, mmcv 2.1.0 without ops,
#                                              mmpretrain 1.2; COMPAT_TESTS, with the C library
#                                              required (MMDCLS_NATIVE=1) and the installed-wheel
#                                              test
# `make test` runs the main lane, then the compat lane.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmdcls-env-complete
COMPAT_VENV ?= .venv-compat
COMPAT_PY := $(COMPAT_VENV)/bin/python
COMPAT_STAMP := $(COMPAT_VENV)/.mmdcls-env-complete
# Everything but the toolkit-centred suites (configs, tools, deploy, tests/test_utils/
# test_tool_config.py): mmdet / mmseg need mmcv's compiled ops, which the compat lane lacks, and
# the tests below that need them skip there, naming what is missing.
COMPAT_TESTS ?= tests/test_ops tests/test_models tests/test_engine tests/test_stack \
	tests/test_utils/test_compat.py tests/test_utils/test_collect_env.py tests/test_install \
	tests/test_cls tests/test_configs/test_imagenet_configs.py

.PHONY: env env-compat test test-compat lint demo bench clean-env
LINT_PATHS := mmdcls tools tests configs setup.py

env: $(STAMP)

env-compat: $(COMPAT_STAMP)

# A stamp is rewritten only when the environment script or the pins change; the script itself
# is idempotent, so a rerun after a change only installs what is missing.
$(STAMP): tools/misc/setup_env.sh requirements/build.txt requirements/constraints.txt \
		requirements/runtime.txt requirements/det.txt requirements/seg.txt \
		requirements/tests.txt requirements/lint.txt setup.py
	LANE=main VENV=$(VENV) bash tools/misc/setup_env.sh
	touch $@

$(COMPAT_STAMP): tools/misc/setup_env.sh requirements/build.txt requirements/compat.txt setup.py
	LANE=compat VENV=$(COMPAT_VENV) bash tools/misc/setup_env.sh
	touch $@

test: env
	$(PY) -m pytest tests
	$(MAKE) test-compat

test-compat: env-compat
	MMDCLS_NATIVE=$${MMDCLS_NATIVE:-1} $(COMPAT_PY) -m pytest $(COMPAT_TESTS)

# flake8, isort and yapf as configured in setup.cfg (OpenMMLab's settings, 100 columns); CI runs
# it after the tests. `$(PY) -m isort $(LINT_PATHS) && $(PY) -m yapf -i -r $(LINT_PATHS)` fixes
# what the last two report.
lint: env
	$(PY) -m flake8 $(LINT_PATHS)
	$(PY) -m isort --check-only --diff $(LINT_PATHS)
	$(PY) -m yapf --diff --recursive $(LINT_PATHS)

# The demo's pretraining stage runs in mmpretrain, which lives in the compat lane (torchvision
# does not load beside the CPU-only torch of .venv); detection and segmentation run in .venv.
demo: env env-compat
	$(PY) tools/misc/demo.py

# Wall-clock checks: the tests marked `benchmark` (deselected by `make test`, see setup.cfg),
# then the CPU benchmark scripts. tools/analysis/benchmark_gpu.py needs a CUDA device.
bench: env
	$(PY) -m pytest -m benchmark tests
	$(PY) tools/analysis/benchmark_ops.py
	$(PY) tools/analysis/benchmark_backbone.py

clean-env:
	rm -rf $(VENV) $(COMPAT_VENV)
