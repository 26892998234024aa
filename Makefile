# make demo: set up and run the main job on the embedded lab.
# make test: set up and run every check (ruff, the import contract, mypy --strict, pytest incl. the lab tests).
# make container-test: build the Containerfile with Debian's podman and run the image (as root).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean schema container-test

# The pins of constraints-dev.txt (which includes constraints.txt, the image's pins).
$(STAMP): pyproject.toml constraints.txt constraints-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints-dev.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m scripts.demo

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy --strict reconciler

pytest: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

schema: $(STAMP)
	$(BIN)/reconcile schema > schemas/cluster-spec.schema.json

# Root only (rootful podman); storage and build cache in /var/tmp/cms-reconciler-podman.
container-test:
	$(PYTHON) scripts/container_test.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
