# Quick start: `make demo` (install + compare the course's use cases), `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test install selfcheck bench clean

$(BIN)/mlarch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(BIN)/mlarch

install: $(BIN)/mlarch

demo: install
	$(BIN)/mlarch compare spam voice-to-text ad-conversion

test: install
	$(BIN)/python -m pytest -q

selfcheck: install
	$(BIN)/mlarch selfcheck

bench: install
	$(BIN)/python benchmarks/bench_simulate.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
