"""docker-compose.yml runs real rushcart commands with settings the server knows, behind a reverse proxy
whose configuration (deploy/nginx.conf) bounds what reaches the API."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import crossplane
import yaml

from server.cli import build_parser
from server.graphql_view import MAX_BODY_BYTES
from server.settings import Settings, known_variables
from server.webhooks import MAX_BODY as WEBHOOK_MAX_BODY

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
# Variables the images of PostgreSQL, Valkey, nginx, PgBouncer and Citus read, not rushcart.
THIRD_PARTY = {
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
    "redis": set(),
    "proxy": set(),
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


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_only_the_proxy_is_published() -> None:
    """nginx (the official image) is the one service with a published port; the API replicas are reached
    through it, and trust X-Forwarded-For from the proxy's fixed address only."""
    s = services()
    assert s["proxy"]["image"].startswith("nginx:")
    assert ["proxy"] == [name for name, service in s.items() if service.get("ports")]
    assert ["8000:8080"] == s["proxy"]["ports"]
    proxy_address = s["proxy"]["networks"]["default"]["ipv4_address"]
    subnet = compose()["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(proxy_address) in ipaddress.ip_network(subnet)
    assert proxy_address == s["api"]["environment"]["TRUSTED_PROXIES"]
    assert "service_healthy" == s["proxy"]["depends_on"]["api"]["condition"]


def test_the_proxy_mounts_the_config_in_the_repository() -> None:
    """The proxy's configuration is deploy/nginx.conf, mounted read-only as nginx's main file."""
    [mount] = services()["proxy"]["volumes"]
    source, target, mode = mount.split(":")
    assert (ROOT / source).resolve() == NGINX_CONF
    assert ("/etc/nginx/nginx.conf", "ro") == (target, mode)


NGINX_CONF = (ROOT / "deploy" / "nginx.conf").resolve()


def nginx() -> list[dict[str, Any]]:
    """deploy/nginx.conf parsed (and its directives checked for their contexts and arguments) by crossplane."""
    parsed = crossplane.parse(str(NGINX_CONF), combine=True, check_ctx=True, check_args=True)
    assert ("ok", []) == (parsed["status"], parsed["errors"])
    return list(parsed["config"][0]["parsed"])


def block(directives: list[dict[str, Any]], name: str, *args: str) -> list[dict[str, Any]]:
    [found] = [d for d in directives if d["directive"] == name and d["args"] == list(args)]
    return list(found["block"])


def values(directives: list[dict[str, Any]], name: str) -> list[list[str]]:
    return [d["args"] for d in directives if d["directive"] == name]


def value(directives: list[dict[str, Any]], name: str) -> list[str]:
    [args] = values(directives, name)
    return args


def size(text: str) -> int:
    units = {"k": 1024, "m": 1024 * 1024}
    return int(text[:-1]) * units[text[-1].lower()] if text[-1].lower() in units else int(text)


def seconds(text: str) -> int:
    assert text.endswith("s"), text
    return int(text[:-1])


def test_nginx_balances_over_the_api_service() -> None:
    """The upstream is the compose service `api` on the port its command listens on, re-resolved through
    Docker's DNS so that every replica gets requests; the server listens where compose publishes."""
    http = block(nginx(), "http")
    upstream = block(http, "upstream", "api")
    api_command = services()["api"]["command"]
    port = api_command[api_command.index("--port") + 1]
    [server] = values(upstream, "server")
    assert [f"api:{port}", "resolve"] == server[:2]
    assert ["127.0.0.11"] == value(http, "resolver")[:1]
    assert [["8080"]] == values(block(http, "server"), "listen")


def test_nginx_bounds_slow_and_large_requests() -> None:
    """Header and body timeouts no longer than the API's own; bodies up to 1 MiB on /graphql and 64 KiB on
    the webhook (what the API accepts), less elsewhere."""
    http = block(nginx(), "http")
    defaults = Settings()
    assert seconds(value(http, "client_header_timeout")[0]) <= defaults.request_header_timeout_seconds
    assert seconds(value(http, "client_body_timeout")[0]) <= defaults.request_body_timeout_seconds
    server = block(http, "server")
    graphql, webhook = block(server, "location", "=", "/graphql"), block(server, "location", "=", "/webhooks/payments")
    assert MAX_BODY_BYTES == size(value(graphql, "client_max_body_size")[0]) == 1024 * 1024
    assert WEBHOOK_MAX_BODY == size(value(webhook, "client_max_body_size")[0]) == 64 * 1024
    assert size(value(http, "client_max_body_size")[0]) < WEBHOOK_MAX_BODY


def test_nginx_upgrades_websockets_and_forwards_the_client_address() -> None:
    """/graphql passes WebSocket upgrades; every request carries the connecting address in X-Forwarded-For,
    replacing what the client sent; /metrics stays internal."""
    http = block(nginx(), "http")
    assert ["1.1"] == value(http, "proxy_http_version")
    headers = dict(args for args in values(http, "proxy_set_header"))
    assert "$remote_addr" == headers["X-Forwarded-For"]
    server = block(http, "server")
    graphql = block(server, "location", "=", "/graphql")
    graphql_headers = dict(args for args in values(graphql, "proxy_set_header"))
    assert ("$http_upgrade", "$connection_upgrade") == (graphql_headers["Upgrade"], graphql_headers["Connection"])
    assert ["http://api"] == value(graphql, "proxy_pass")
    assert [["404"]] == values(block(server, "location", "=", "/metrics"), "return")


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
