"""Report test fixtures: the CRM on SQLite and on the real PostgreSQL server."""

from tests.crmstore.conftest import db_url, pg_url, store

__all__ = ["db_url", "pg_url", "store"]
