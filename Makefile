# webweave: every target installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SHARED := ../shared/data
OUT    ?= out
CONFIG ?=
SET    ?=
ARGS    = $(if $(CONFIG),--config $(CONFIG)) $(foreach s,$(SET),--set $(s))
DEMO_WARCS ?= $(wildcard $(SHARED)/warc/*.warc.gz)

.PHONY: setup test demo extract filter dedup query bench clean dist

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q

# make extract INPUT="path/or/glob ..." OUTPUT=dir [CONFIG=file] [SET="key=value ..."]
extract: setup
	$(PY) -m jobs.extract --input $(INPUT) --output $(OUTPUT) $(ARGS)

# make filter INPUT=extract-output-dir OUTPUT=dir
filter: setup
	$(PY) -m jobs.filter --input $(INPUT) --output $(OUTPUT) $(ARGS)

# make dedup INPUT=filter-output-dir OUTPUT=dir
dedup: setup
	$(PY) -m jobs.dedup --input $(INPUT) --output $(OUTPUT) $(ARGS)

# The demo: the shared real WARCs plus one WARC built from the shared real HTML pages.
demo: setup
	@test -n "$(DEMO_WARCS)" || { echo "no WARCs: put ../shared/data beside the repo or set DEMO_WARCS=..."; exit 1; }
	$(PY) -m jobs.demo --output $(OUT)/demo $(DEMO_WARCS) $(ARGS)

# make query SQL="select domain, count(*) from 'out/demo/extract/*.parquet' group by 1"
query: setup
	$(PY) -m jobs.query "$$SQL"

bench: setup
	$(PY) -m bench.extract
	$(PY) -m bench.extract_quality
	$(PY) -m bench.filter
	$(PY) -m bench.dedup

clean:
	rm -rf $(OUT) build

# dist/webweave.zip: the project's code for spark-submit --py-files on a cluster.
dist: setup
	rm -rf dist && mkdir -p dist
	$(PY) -m zipfile -c dist/webweave.zip pipeline jobs filters configs
