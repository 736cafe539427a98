# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= runs/latest

.PHONY: venv run test serve compile clean

# Created once from the pinned requirements; rebuilt when they change.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) -m workflows run --output_dir $(OUT) $(ARGS)

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

# Serves the model of the last `make run` on http://127.0.0.1:8080 (KServe V1 and V2).
serve: $(VENV)/.installed
	$(PY) -m workflows serve --run_dir $(OUT)

compile: $(VENV)/.installed
	$(PY) -m workflows compile

clean:
	rm -rf runs .pytest_cache
