"""The journal lives in the CRM database: its tests run on SQLite and on the real PostgreSQL server, with the
CRM tests' fixtures."""

from tests.crmstore.conftest import db_url, pg_url, store

__all__ = ["db_url", "pg_url", "store"]
