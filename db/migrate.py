"""Apply the Alembic migrations programmatically (`rushcart migrate`), no alembic.ini needed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str, order_partitions: int = 16, statement_cache: bool = True) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    config.attributes["order_partitions"] = order_partitions
    config.attributes["statement_cache"] = statement_cache
    return config


def upgrade(database_url: str, order_partitions: int = 16, revision: str = "head", *,
            statement_cache: bool = True) -> None:
    command.upgrade(alembic_config(database_url, order_partitions, statement_cache), revision)
