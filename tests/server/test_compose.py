"""docker-compose.yml runs real rushcart commands with settings the server knows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from server.cli import build_parser
from server.settings import known_variables

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
# Variables the images of PostgreSQL and Valkey read, not rushcart.
THIRD_PARTY = {
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
    "redis": set(),
    "pgbouncer": {"DATABASE_URL", "POOL_MODE", "AUTH_TYPE", "MAX_CLIENT_CONN", "DEFAULT_POOL_SIZE"},
    "citus": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
}


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_every_rushcart_service_runs_a_real_command() -> None:
    """Each service built from this project runs a `rushcart` command the CLI accepts."""
    parser = build_parser()
    checked = []
    for name, service in services().items():
        if name in THIRD_PARTY:
            continue
        command = service["command"]
        assert "rushcart" == command[0], name
        parser.parse_args(command[1:])
        checked.append(name)
    assert {"migrate", "api", "worker"} <= set(checked)


def test_every_variable_is_a_known_setting() -> None:
    """No service passes a variable the settings do not read (a typo would be silently ignored)."""
    unknown = {}
    for name, service in services().items():
        names = set(service.get("environment", {}))
        extra = names - known_variables() - THIRD_PARTY.get(name, set())
        if extra:
            unknown[name] = sorted(extra)
    assert {} == unknown


def test_stack_shape() -> None:
    """PostgreSQL 16, Valkey 9 with AOF and no eviction, two API replicas and two workers after migrations."""
    s = services()
    assert s["postgres"]["image"].startswith("postgres:16")
    assert s["redis"]["image"].startswith("valkey/valkey:9")
    assert {"--appendonly", "yes", "noeviction"} <= set(s["redis"]["command"])
    assert (2, 2) == (s["api"]["deploy"]["replicas"], s["worker"]["deploy"]["replicas"])
    for name in ("api", "worker"):
        assert "service_completed_successfully" == s[name]["depends_on"]["migrate"]["condition"]


def test_services_reach_postgres_through_pgbouncer_in_transaction_mode() -> None:
    """The API, the workers and migrations use PgBouncer (transaction pooling) with prepared statements off."""
    s = services()
    assert "transaction" == s["pgbouncer"]["environment"]["POOL_MODE"]
    assert "@postgres:5432/" in s["pgbouncer"]["environment"]["DATABASE_URL"]
    for name in ("migrate", "api", "worker"):
        env = s[name]["environment"]
        assert ("@pgbouncer:5432/", "pgbouncer") == (
            env["DATABASE_URL"][env["DATABASE_URL"].index("@"):].split("rushcart")[0], env["DATABASE_POOLER"])


def test_citus_profile_uses_the_official_image() -> None:
    """A `citus` profile holds the official Citus image and starts only when asked for."""
    citus = services()["citus"]
    assert (["citus"], True) == (citus["profiles"], citus["image"].startswith("citusdata/citus:"))
