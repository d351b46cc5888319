# Two commands do all set-up on a fresh machine: `make demo` (the main job) and `make test`.
# Set-up: .venv (Python 3.12, scalms + uv), then one uv environment per model family in .venvs/.

PYTHON_VERSION := 3.12
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.scalms-installed
DEMO_DIR := demo_output

.PHONY: install envs system-deps demo test test-fast lint benchmark clean

$(INSTALLED): pyproject.toml
	@command -v python$(PYTHON_VERSION) >/dev/null || { \
		echo "python$(PYTHON_VERSION) not found: install it (pyenv install $(PYTHON_VERSION))"; exit 1; }
	python$(PYTHON_VERSION) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev,benchmark,bench]'
	touch $@

install: $(INSTALLED)

# Idempotent: an environment whose requirements did not change is left as it is.
envs: install
	$(BIN)/scalms env create all

demo: install
	$(BIN)/scalms env create sevennet
	$(BIN)/scalms models list
	$(BIN)/scalms static examples/Ga54Pt_icosahedron.xyz examples/Ga144Pt3_icosahedron.xyz \
		examples/Ga54Pt_rattled.extxyz examples/Ga32_periodic.extxyz --model 7net-0 --backend both --device cpu \
		--out $(DEMO_DIR)/static.h5 --overwrite
	$(BIN)/scalms benchmark accuracy tests/data/cp2k_GaPt_clusters.extxyz --model 7net-0 --device cpu \
		--working-dir $(DEMO_DIR)/benchmark --overwrite
	$(BIN)/scalms geometry nanoparticle --size 50 --solute Pt --count 1 --model 7net-0 \
		--out $(DEMO_DIR)/geometry --overwrite --device cpu --time-step-fs 2 --save-interval 5 \
		--equilibrate-ps 0.1 --hot-K 1000 --hot-ps 0.3 --final-ps 0.2
	$(BIN)/scalms geometry adsorbates $(DEMO_DIR)/geometry/Ga49Pt.extxyz --molecule propane \
		--count 8 --out $(DEMO_DIR)/geometry/Ga49Pt_propane.extxyz
	$(BIN)/scalms dynamics run $(DEMO_DIR)/geometry/Ga49Pt.extxyz examples/Ga144Pt3_icosahedron.xyz \
		--model 7net-0 --working-dir $(DEMO_DIR)/md --overwrite --device cpu \
		--n-steps 250 --time-step-fs 2 --temperature-K 450 --save-interval 5 \
		--pdf --partial-pdf Pt-Ga --trace Pt --surface-element Ga --net-force \
		--diffusion Pt --msd-max-lag-fs 200
	$(BIN)/scalms io to-xyz $(DEMO_DIR)/md/MD_dynamics_results.h5 $(DEMO_DIR)/md/ovito
	$(BIN)/scalms analyze cluster $(DEMO_DIR)/md/MD_dynamics_results.h5 --model 7net-0 --every 2 \
		--device cpu --cache-dir $(DEMO_DIR)/descriptor_cache --out $(DEMO_DIR)/clusters
	@echo "open $(DEMO_DIR)/geometry/report.html, $(DEMO_DIR)/md/report.html and" \
		"$(DEMO_DIR)/clusters/report.html;" \
		"OVITO reads $(DEMO_DIR)/md/ovito/*.xyz and $(DEMO_DIR)/geometry/*.extxyz"

# The real programs the HPC tests run: CP2K and Quantum ESPRESSO (DFT), SLURM and munge (a
# single-node scheduler the tests start). Installed with apt-get when missing and run as root (CI);
# elsewhere the tests that need them skip, naming this target (in CI they fail instead).
SYSTEM_PROGRAMS := cp2k.psmp pw.x sbatch slurmctld slurmd munged
SYSTEM_PACKAGES := cp2k cp2k-data quantum-espresso quantum-espresso-data slurm-wlm munge

system-deps:
	@missing=""; for p in $(SYSTEM_PROGRAMS); do command -v $$p >/dev/null 2>&1 || \
		[ -x /usr/sbin/$$p ] || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "system programs: all present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing$$missing (Debian: $(SYSTEM_PACKAGES))"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	else echo "missing$$missing: run 'make system-deps' as root (apt-get install $(SYSTEM_PACKAGES))"; fi

test: envs system-deps
	$(BIN)/python -m pytest

# The suite less the tests that need a model environment (markers sevennet, mace) and those that
# take 10 s or more (marker slow: MD run to its end, kill and resume, benchmarks through children):
# under 3 minutes on 2 idle cores. `make test` runs them all.
test-fast: install
	$(BIN)/python -m pytest -m "not sevennet and not mace and not slow"

lint: install
	$(BIN)/ruff check src tests benchmarks examples ML_training
	$(BIN)/ruff format --check src tests benchmarks examples ML_training

benchmark: envs
	$(BIN)/python benchmarks/cli_startup.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
