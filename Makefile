# The two commands of the README: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint readme install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Trains LyaPPO for ~3 minutes (lr 1e-3 for the short budget) on the Table II scenario, compares it
# with the baselines on 3 seeded episodes, prints the table, writes runs/demo-<time>/compare.png and
# logs everything to MLflow (sqlite:///mlflow.db here;
# `$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db` shows it).
demo: $(STAMP)
	$(BIN)/splitrl train configs/lyappo.yaml --set stop.iterations=null --set stop.time_s=180 --set algorithm.lr=1e-3 \
	    --set evaluation.episodes=3 --out runs/demo-$$(date -u +%Y%m%d-%H%M%S)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# the README's generated config tables, from the schemas
readme: $(STAMP)
	$(BIN)/python docs/tools/update_readme.py

# ruff (configured in pyproject.toml): lint and formatting, both must be clean
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_allocators.py
	$(BIN)/python benchmarks/bench_env.py
	$(BIN)/python benchmarks/bench_emh.py
	$(BIN)/python benchmarks/bench_lymdo.py
	$(BIN)/python benchmarks/bound_emh.py
	$(BIN)/python benchmarks/bench_scaling.py
	$(BIN)/python benchmarks/bench_scaling.py --cluster
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_emh_floor.py

clean:
	rm -rf runs .pytest_cache
