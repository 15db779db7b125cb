# Quick start: `make demo` (install + compare the course's use cases), `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test fuzz mutate install selfcheck bench clean

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

# 10,000 fresh hostile inputs (mutated presets, --set values) in parallel shards; prints the
# outcome counts
FUZZ_EXAMPLES ?= 10000
FUZZ_JOBS ?= 2
fuzz: install
	$(BIN)/python tests/run_fuzz.py --examples $(FUZZ_EXAMPLES) --jobs $(FUZZ_JOBS)

# mutation testing of the modules that compute figures ([tool.mutmut] in pyproject.toml);
# not in CI: several hours on 2 cores (it resumes where it stopped). Prints the score per
# module; see docs/testing.md.
mutate: install
	$(BIN)/python -m pip install --quiet 'mutmut>=3.3'
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/python benchmarks/mutation_score.py

selfcheck: install
	$(BIN)/mlarch selfcheck

bench: install
	$(BIN)/python benchmarks/bench_simulate.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
