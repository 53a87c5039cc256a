# The README's two commands: `make test` and `make demo`. Both build .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmdcls-env-complete

.PHONY: env test demo bench clean-env

env: $(STAMP)

# The stamp is rewritten only when the environment script or the pins change; the script itself
# is idempotent, so a rerun after a change only installs what is missing.
$(STAMP): tools/misc/setup_env.sh requirements/build.txt requirements/runtime.txt requirements/tests.txt setup.py
	bash tools/misc/setup_env.sh
	touch $@

test: env
	$(PY) -m pytest tests

demo: env
	$(PY) tools/misc/demo.py

bench: env
	$(PY) tools/analysis/benchmark_ops.py
	$(PY) tools/analysis/benchmark_backbone.py

clean-env:
	rm -rf $(VENV)
