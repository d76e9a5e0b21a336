# barque: two set-up commands, `make demo` and `make test`; both install what they need first.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install test unit demo bench clean

install:
	@bash scripts/install.sh

test: install
	@bash scripts/test.sh

unit: install
	$(PY) -m pytest -q tests/unit

demo: install
	@bash scripts/demo.sh

bench: install
	@bash scripts/bench.sh

clean:
	rm -rf $(VENV) build *.egg-info
