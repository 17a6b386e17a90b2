# The README's quick start is these two targets: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Compiled copies of the hot modules (src/consortia/native.py); rebuilt when a source changes.
NATIVE := $(VENV)/lib/consortia-native/manifest.json
NATIVE_SOURCES := $(wildcard src/consortia/catalog/*.py src/consortia/search/*.py) \
	src/consortia/native.py scripts/build-native.py

.PHONY: demo test install native system-deps lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A failed build is not fatal: every module runs as plain Python, only slower.
$(NATIVE): $(STAMP) $(NATIVE_SOURCES)
	$(BIN)/python scripts/build-native.py || echo "note: running on the pure Python modules"

install: $(STAMP) $(NATIVE)

native: $(NATIVE)

demo: $(STAMP) $(NATIVE)
	$(BIN)/consortia demo --host 127.0.0.1 --port 8000

system-deps:
	bash scripts/install-system-deps.sh

test: $(STAMP) $(NATIVE) system-deps
	bash scripts/run-tests.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) consortia.db consortia.db-wal consortia.db-shm consortia.db.segments .consortia-secret
