# The two commands of the README: `make demo` runs the whole system, `make test` proves it.
.PHONY: demo test lint unit bootstrap bench soak screenshots clean

bootstrap:
	bash scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/kpi-stream demo

lint: bootstrap
	.venv/bin/ruff check stream kpi_devtools tests bench deploy scripts
	.venv/bin/ruff format --check stream kpi_devtools tests bench deploy scripts
	.venv/bin/mypy

test: lint
	.venv/bin/pytest

unit: bootstrap
	.venv/bin/pytest tests/unit

soak: bootstrap
	KPI_SOAK=1 .venv/bin/pytest tests/integration/test_chaos.py -s -p no:cacheprovider

bench: bootstrap
	.venv/bin/python -m bench.run_all

# docs/*.png, the README's screenshots: the real demo in headless Chromium at 1920x1080.
screenshots: bootstrap
	.venv/bin/python scripts/screenshots.py --out docs

clean:
	rm -rf .venv .kpi-data artifacts .pytest_cache .mypy_cache .ruff_cache
