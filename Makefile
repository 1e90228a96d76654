# Everything runs from a project-local virtual environment, created on demand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench rules lint clean

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

## make bench: side-by-side overhead measurements (uninstrumented, vanilla, otel-monitor)
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

## make rules: regenerate collector/prometheus/rules from the example config
rules: $(STAMP)
	$(BIN)/otel-monitor rules --config examples/shop/otel-monitor.yaml --output collector/prometheus/rules/otel-monitor.rules.yaml

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
