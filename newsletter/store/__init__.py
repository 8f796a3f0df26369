"""The store: where everything the product remembers lives, on SQLite or PostgreSQL.

- ``engine``: opening a database, sessions, schema upgrades (Alembic migrations in ``migrations/``).
- ``models``: the tables, as SQLAlchemy models.
- ``values``: the enumerations the tables hold and the UTC timestamp type, usable without the ORM.
- ``lease``: named locks that expire, so one scheduled run at a time does the work.

May import: ``newsletter.config`` and ``newsletter.errors``. Nothing else of ours.
"""
