"""docker-compose.yml runs real rushcart commands with settings the server knows, behind a reverse proxy
whose configuration (deploy/nginx.conf) bounds what reaches the API."""

from __future__ import annotations

import ipaddress
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
    **{f"valkey-{n}": set() for n in range(1, 7)},
    "valkey-cluster-init": set(),
    "queue-redis": set(),
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


def default_services() -> dict[str, Any]:
    """What a plain `docker compose up` starts: the services in no profile."""
    return {name: service for name, service in services().items() if not service.get("profiles")}


def test_only_the_proxy_is_published() -> None:
    """nginx (the official image) is the one service of the default stack with a published port; the API
    replicas are reached through it, and trust X-Forwarded-For from the proxy's fixed address only."""
    s = services()
    assert s["proxy"]["image"].startswith("nginx:")
    assert ["proxy"] == [name for name, service in default_services().items() if service.get("ports")]
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


CLUSTER_NODES = [f"valkey-{n}" for n in range(1, 7)]
CLUSTER_SERVICES = {*CLUSTER_NODES, "valkey-cluster-init", "queue-redis", "api-cluster", "worker-cluster"}


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def cluster_nodes() -> dict[str, Any]:
    nodes = {}
    for name, service in services().items():
        command = service.get("command", [])
        if "--cluster-enabled" in command and "yes" == flag(command, "--cluster-enabled"):
            nodes[name] = service
    return nodes


def test_cluster_profile_holds_the_cluster_variant() -> None:
    """`--profile cluster` adds the cluster variant and nothing else, and starts only when asked for."""
    in_profile = {name for name, service in services().items() if "cluster" in service.get("profiles", [])}
    assert CLUSTER_SERVICES == in_profile
    for name in sorted(CLUSTER_SERVICES):
        assert ["cluster"] == services()[name]["profiles"], name


def test_cluster_has_six_durable_nodes_that_announce_their_service_names() -> None:
    """Six Valkey 9 nodes (three primaries and their replicas once formed), each fsyncing every write, never
    evicting, on a volume of its own, and telling clients the name they can resolve in the compose network."""
    nodes = cluster_nodes()
    assert CLUSTER_NODES == sorted(nodes)
    declared = set(compose()["volumes"])
    sources = []
    for name, node in nodes.items():
        command = node["command"]
        assert node["image"].startswith("valkey/valkey:9"), name
        assert ("yes", "always", "noeviction", "yes") == (
            flag(command, "--appendonly"), flag(command, "--appendfsync"), flag(command, "--maxmemory-policy"),
            flag(command, "--cluster-enabled")), name
        assert (name, "hostname") == (
            flag(command, "--cluster-announce-hostname"), flag(command, "--cluster-preferred-endpoint-type")), name
        assert ["CMD", "valkey-cli", "ping"] == node["healthcheck"]["test"], name
        [volume] = node["volumes"]
        source, target = volume.split(":")
        assert "/data" == target, name
        sources.append(source)
    assert len(set(sources)) == 6
    assert set(sources) <= declared


def test_cluster_init_forms_the_cluster_once_from_all_six_nodes() -> None:
    """A one-shot service waits for every node, forms the cluster with one replica per primary, and leaves a
    cluster that is already ok alone (a second `up` must not try to create it over its data)."""
    init = services()["valkey-cluster-init"]
    assert (init["image"].startswith("valkey/valkey:9"), "no") == (True, init["restart"])
    assert {node: "service_healthy" for node in CLUSTER_NODES} == {
        name: dependency["condition"] for name, dependency in init["depends_on"].items()}
    script = init["command"][-1].splitlines()
    [(created, create)] = [(number, shlex.split(line)) for number, line in enumerate(script)
                           if line.split()[:3] == ["valkey-cli", "--cluster", "create"]]
    assert (1, True) == (int(flag(create, "--cluster-replicas")), "--cluster-yes" in create)
    # The nodes listen on Valkey's default port: none of them is given another.
    assert all("--port" not in node["command"] for node in cluster_nodes().values())
    assert {f"{node}:6379" for node in CLUSTER_NODES} == {arg for arg in create[3:] if ":" in arg}
    [check] = [number for number, line in enumerate(script) if "cluster_state:ok" in line and "exit 0" in line]
    assert check < created


def test_cluster_api_and_workers_follow_the_cluster_contract() -> None:
    """The cluster API and workers keep state on the cluster, queue RQ's jobs on a standalone Valkey, wait for
    one replica, and start after migrations and the cluster's forming."""
    s = services()
    queue = s["queue-redis"]
    assert "queue-redis" not in cluster_nodes()
    assert queue["image"].startswith("valkey/valkey:9")
    assert ("yes", "noeviction") == (
        flag(queue["command"], "--appendonly"), flag(queue["command"], "--maxmemory-policy"))
    assert ("rushcart", "serve") == tuple(s["api-cluster"]["command"][:2])
    assert ("rushcart", "worker") == tuple(s["worker-cluster"]["command"][:2])
    for name in ("api-cluster", "worker-cluster"):
        env = s[name]["environment"]
        assert ("true", "1") == (env["REDIS_CLUSTER"], env["REDIS_WAIT_REPLICAS"]), name
        assert urlsplit(env["REDIS_URL"]).hostname in cluster_nodes(), name
        assert "queue-redis" == urlsplit(env["QUEUE_REDIS_URL"]).hostname, name
        # The rest (PgBouncer, the webhook secret) is the default stack's.
        assert env["DATABASE_URL"] == s["api"]["environment"]["DATABASE_URL"], name
        conditions = {dependency: spec["condition"] for dependency, spec in s[name]["depends_on"].items()}
        assert "service_completed_successfully" == conditions["migrate"] == conditions["valkey-cluster-init"], name
        assert "redis" not in conditions, name


def test_cluster_api_is_published_beside_the_proxy() -> None:
    """The cluster API is reachable on its own host port, which is not the proxy's."""
    s = services()
    published = {name: s[name]["ports"] for name in CLUSTER_SERVICES if s[name].get("ports")}
    assert {"api-cluster": ["8001:8000"]} == published
    api_command = s["api-cluster"]["command"]
    assert "8000" == flag(api_command, "--port")


def test_cluster_services_leave_the_proxy_its_address() -> None:
    """Docker gives the default network's addresses out in order and does not hold back the proxy's fixed one:
    a cluster service there starts only after the proxy, or the proxy fails with "Address already in use"."""
    for name in sorted(CLUSTER_SERVICES):
        service = services()[name]
        if "default" in service.get("networks", ["default"]):
            assert "proxy" in service["depends_on"], name
    assert "cluster" in compose()["networks"]


def test_default_stack_is_not_a_cluster() -> None:
    """Without the profile nothing changes: no service is told Redis is a cluster or depends on the cluster's."""
    for name, service in default_services().items():
        assert "REDIS_CLUSTER" not in service.get("environment", {}), name
        assert not set(service.get("depends_on", {})) & CLUSTER_SERVICES, name
    assert {"postgres", "pgbouncer", "redis", "migrate", "api", "proxy", "worker"} == set(default_services())
