# Two entry points (see README): `make` runs the main job on the embedded example
# (validate, describe, design-based impact scores by population x region, then the
# default Bayesian model, models/impact-scale-scores.toml, written as a versioned run),
# `make test` runs lint and the test suite. Each run holds its HTML report
# (results/<model>/<version>/report/report.html). Both set up .venv first when needed.
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := data/example

.PHONY: run test lint setup clean-venv

run: $(VENV)/.installed
	$(BIN)/impactmodel validate $(EXAMPLE)/respondents.csv --codebook $(EXAMPLE)/codebook.toml
	$(BIN)/impactmodel describe $(EXAMPLE)/respondents.csv --codebook $(EXAMPLE)/codebook.toml
	$(BIN)/impactmodel estimate $(EXAMPLE)/respondents.csv --codebook $(EXAMPLE)/codebook.toml \
		--by population,region --out results/design-based --force
	$(BIN)/impactmodel fit --out results
	$(BIN)/impactmodel fit models/design-based.toml --out results
	$(BIN)/impactmodel runs list --out results

test: $(VENV)/.installed lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(VENV)/.installed
	$(BIN)/ruff check impactmodel tests benchmarks
	$(BIN)/mypy impactmodel

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

clean-venv:
	rm -rf $(VENV)
