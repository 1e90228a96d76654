# Everything runs from a project-local virtual environment, created on demand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit test-integration test-e2e install bench bench-faults rules lint typecheck clean test-lower-bounds audit collector backends canary

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## make demo: the example shop under opentelemetry-instrument, traffic, and the console
demo: $(STAMP)
	$(BIN)/python -m examples.demo

## make test: the whole suite
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make test-unit / test-integration / test-e2e: one group of tests/ (see tests/README.md)
test-unit test-integration test-e2e: $(STAMP)
	$(BIN)/python -m pytest tests/$(subst test-,,$@) $(PYTEST_ARGS)

## make collector: the collector distribution of collector/builder-config.yaml (ocb; needs Go),
## cached outside the repository by the manifest's sha256, linked at .collector/otelcol-monitor
collector:
	collector/build.sh

## make backends: Jaeger v2 and VictoriaLogs from Go modules, for the end-to-end tests (cached like the collector)
backends:
	collector/backends.sh

## make lint: ruff check and ruff format --check over the code
## (the default until the tree has been formatted once)
LINT_PATHS ?= otel_monitor tests benchmarks examples
FORMAT_CHECK ?= 1
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	@if [ "$(FORMAT_CHECK)" = 1 ]; then $(BIN)/ruff format --check $(LINT_PATHS); \
	else echo "lint: ruff format --check not run (FORMAT_CHECK=1 runs it)"; fi

## make typecheck: mypy over the package (settings in pyproject.toml)
typecheck: $(STAMP)
	$(BIN)/mypy otel_monitor

## make canary: the newest SDK, contrib, FastAPI and SQLAlchemy past the pins, a fast subset, the compat table
canary:
	.ci/canary

## make bench: side-by-side overhead measurements (uninstrumented, vanilla, otel-monitor)
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

## make bench-faults: app latency while the OTLP receiver is down, hung, slow, throttling or broken
bench-faults: $(STAMP)
	$(BIN)/python -m benchmarks.faults $(BENCH_ARGS)

## make rules: regenerate collector/prometheus/rules from the example config
rules: $(STAMP)
	$(BIN)/otel-monitor rules --config examples/shop/otel-monitor.yaml --output collector/prometheus/rules/otel-monitor.rules.yaml

## make test-lower-bounds: a fresh venv with every dependency at its declared lower bound, and a fast subset
LOWER_VENV ?= .venv-lower-bounds
LOWER_TESTS ?= tests/unit/test_settings.py tests/integration/test_configurator.py tests/integration/test_launcher.py tests/integration/test_config_corpus.py
LOWER_DESELECT ?=
test-lower-bounds:
	rm -rf $(LOWER_VENV)
	$(PYTHON) -m venv $(LOWER_VENV)
	$(LOWER_VENV)/bin/pip install --quiet --upgrade pip
	$(LOWER_VENV)/bin/pip install --quiet -c constraints/lower-bounds.txt -e ".[fastapi,sqlalchemy,httpx,console]" pytest pytest-timeout hypothesis rotel
	$(LOWER_VENV)/bin/pip list --format=freeze
	$(LOWER_VENV)/bin/python -m pytest -q -p no:cacheprovider $(LOWER_TESTS) $(LOWER_DESELECT)

## make audit: known vulnerabilities in the resolved .venv (pip-audit; needs network to PyPI)
audit: $(STAMP)
	$(BIN)/pip-audit --progress-spinner off --skip-editable --desc on -l

clean:
	rm -rf $(VENV) $(LOWER_VENV) .venv-canary .pytest_cache build *.egg-info
