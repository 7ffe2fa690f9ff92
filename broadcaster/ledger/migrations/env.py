"""Alembic environment of the ledger, driven by :mod:`broadcaster.ledger.schema`.

The caller opens the connection, begins the transaction and takes the migration lock; it hands
the connection over in ``config.attributes["connection"]``. Running inside that transaction
(Alembic sees it as external and does not begin or commit its own) is what makes "stamp 0.1.0,
then upgrade" one atomic step and lets two nodes starting at once wait for each other instead of
both migrating.

Offline mode (``--sql``) renders the DDL for a DBA to review; it needs ``sqlalchemy.url`` set.
"""

from __future__ import annotations

from alembic import context

config = context.config


def run_offline() -> None:
    """Render the migrations as SQL for the dialect of ``sqlalchemy.url``, touching no database."""
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("offline migrations need sqlalchemy.url (only its dialect is used)")
    context.configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"),
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations on the connection the caller passed in."""
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("the ledger's migrations run through broadcaster.ledger.schema "
                           "(`broadcaster db upgrade`), which passes "
                           "config.attributes['connection']")
    context.configure(
        connection=connection,
        # Only used by autogenerate (a developer drafting a migration): the models of the moment.
        target_metadata=config.attributes.get("target_metadata"),
        # SQLite cannot ALTER most things in place; batch mode recreates a table when it must.
        render_as_batch=connection.dialect.name == "sqlite",
        # SQLite's DDL is transactional too (Alembic assumes not); the caller's BEGIN IMMEDIATE
        # covers it. Said here so that Alembic's log does not claim otherwise.
        transactional_ddl=True,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():  # a no-op inside the caller's transaction, by design
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
