# nota: the two commands that do everything on a fresh machine are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := demo
export NOTA_DB ?= $(DEMO)/nota.db

.PHONY: demo test bench venv tools bench-tools clean

$(BIN)/nota: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/nota

# astrometry.net (solve-field, build-astrometry-index) from Debian where it is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
tools:
	@command -v solve-field >/dev/null || { echo "installing astrometry.net (apt-get) ..."; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq astrometry.net >/dev/null; }

# Simulate the built-in night (NOT/ALFOSC, 2008-04-12); the newcomer's path, `nota ingest N1/ &&
# nota reduce`, measures, groups, reduces, solves and calibrates it; then look at what was made.
demo: venv tools
	rm -rf $(DEMO)
	$(BIN)/nota simulate $(DEMO)
	$(BIN)/nota --db $(NOTA_DB) astrometry build-index $(DEMO)/N1/truth/catalogue_*.csv
	$(BIN)/nota --db $(NOTA_DB) ingest $(DEMO)/N1
	$(BIN)/nota --db $(NOTA_DB) reduce
	$(BIN)/nota --db $(NOTA_DB) explain ALrd120103.fits
	$(BIN)/nota --db $(NOTA_DB) products
	$(BIN)/nota --db $(NOTA_DB) calibration
	$(BIN)/nota --db $(NOTA_DB) photometry ALrd120103.fits
	$(BIN)/nota --db $(NOTA_DB) photometry stack_GC4496A_R_3x300s_R.fits
	$(BIN)/nota --db $(NOTA_DB) lineage fzt_ALrd120103.fits
	$(BIN)/nota --db $(NOTA_DB) report 2008-04-12 --out $(DEMO)/report_2008-04-12.html
	$(BIN)/nota --db $(NOTA_DB) check
	@echo
	@echo "Browse the night:  $(BIN)/nota --db $(NOTA_DB) serve   then open http://127.0.0.1:8001/nota"

test: venv
	$(BIN)/python -m pytest -q

# Siril (siril-cli), the peer of bench/cmos.py, from Debian where it is missing.
bench-tools:
	@command -v siril-cli >/dev/null || { echo "installing siril (apt-get) ..."; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq siril >/dev/null; }

bench: venv tools bench-tools
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/qc.py
	$(BIN)/python bench/reduce.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/cmos.py

clean:
	rm -rf $(DEMO) bench/out .pytest_cache
