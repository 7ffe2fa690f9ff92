"""Benchmarks of broadcaster (issue 7): run ``make bench`` or ``python bench/run.py --help``.

Not part of the test suite. Every measured scenario runs in its own process, and the loopback
doubles it talks to run in yet another one, so CPU time and peak RSS belong to the code under
measurement only.
"""
