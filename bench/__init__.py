"""The flash-sale benchmark: `make bench` or `python -m bench.run --help`; see bench/README.md."""
