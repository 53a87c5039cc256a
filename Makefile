# The README's two commands: `make test` and `make demo`. Both build .venv on first use.
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
	tests/test_utils/test_compat.py tests/test_utils/test_collect_env.py tests/test_install

.PHONY: env env-compat test test-compat demo bench clean-env

env: $(STAMP)

env-compat: $(COMPAT_STAMP)

# A stamp is rewritten only when the environment script or the pins change; the script itself
# is idempotent, so a rerun after a change only installs what is missing.
$(STAMP): tools/misc/setup_env.sh requirements/build.txt requirements/constraints.txt \
		requirements/runtime.txt requirements/det.txt requirements/seg.txt \
		requirements/tests.txt setup.py
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

demo: env
	$(PY) tools/misc/demo.py

bench: env
	$(PY) tools/analysis/benchmark_ops.py
	$(PY) tools/analysis/benchmark_backbone.py

clean-env:
	rm -rf $(VENV) $(COMPAT_VENV)
