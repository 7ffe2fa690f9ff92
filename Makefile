# The two set-up commands (see README): `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# `make run` installs the service alone; `make test` adds the test tools and the example plugin
# of docs/plugins.md (tests/plugin_example), which the suite installs and uses like a county would.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml tests/plugin_example/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]' -e tests/plugin_example
	touch $(RUN_STAMP) $@

run: $(RUN_STAMP)
	$(BIN)/broadcaster run -c config/broadcaster.yaml

test: $(TEST_STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not serial" -n 3 --dist loadfile
	$(BIN)/python -m pytest -q -m serial

check: $(RUN_STAMP)
	$(BIN)/broadcaster check -c config/broadcaster.yaml

bench: $(TEST_STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache
