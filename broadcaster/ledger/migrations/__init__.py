"""Alembic script directory of the ledger's schema (DESIGN A15), shipped inside the package.

Nothing here is imported by the service: Alembic reads ``env.py``, ``script.py.mako`` and
``versions/*.py`` as files, configured by :mod:`broadcaster.ledger.schema` (no ``alembic.ini``).
This file only makes the directory a package so that ``importlib.resources`` can find it.
See ``docs/migrations.md`` for how to add a migration.
"""
