# Thin wrapper: everything goes through tools/dev.py, which needs only python3
# (it installs uv and the locked environment itself).
PY ?= python3

.PHONY: run test lint sync
run:
	$(PY) tools/dev.py run
test:
	$(PY) tools/dev.py test
lint:
	$(PY) tools/dev.py lint
sync:
	$(PY) tools/dev.py sync
