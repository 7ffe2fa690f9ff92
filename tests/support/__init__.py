"""Helpers shared by the test suite and ``bench/``: clocks, ports, processes."""
