"""Settings come from the environment once, typed, and production refuses unsafe defaults."""

from __future__ import annotations

import pytest

from server.settings import Settings, SettingsError, known_variables


def test_defaults_for_development() -> None:
    """With nothing set, development defaults apply and a webhook secret is generated."""
    s = Settings.from_env({})
    assert (900, 30, True, True) == (s.order_payment_ttl_seconds, s.expiry_sweep_seconds, s.graphiql,
                                     s.introspection)
    assert s.secret_generated and s.payment_webhook_secret.startswith("whsec_")


def test_production_requires_secret_and_urls() -> None:
    """Production mode refuses to start without a webhook secret or server URLs."""
    with pytest.raises(SettingsError, match="PAYMENT_WEBHOOK_SECRET"):
        Settings.from_env({"RUSHCART_ENV": "production", "DATABASE_URL": "postgresql://x/y",
                           "REDIS_URL": "redis://x"})
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        Settings.from_env({"RUSHCART_ENV": "production", "PAYMENT_WEBHOOK_SECRET": "s" * 32})


def test_production_turns_off_graphiql_and_introspection() -> None:
    """In production GraphiQL and introspection are off unless asked for."""
    s = Settings.from_env({"RUSHCART_ENV": "production", "PAYMENT_WEBHOOK_SECRET": "s" * 32,
                           "DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x"})
    assert (False, False) == (s.graphiql, s.introspection)


@pytest.mark.parametrize(("name", "value"), [("ORDER_PAYMENT_TTL_SECONDS", "soon"),
                                             ("EXPIRY_SWEEP_SECONDS", "0"), ("GRAPHIQL", "maybe")])
def test_malformed_values_name_the_variable(name: str, value: str) -> None:
    """A malformed value fails at start-up with the variable's name."""
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_known_variables_include_the_contract_names() -> None:
    """Every variable named by the operations contract is a setting."""
    assert {"DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL", "PAYMENT_WEBHOOK_SECRET",
            "ORDER_PAYMENT_TTL_SECONDS", "EXPIRY_SWEEP_SECONDS"} <= known_variables()


def test_cluster_mode_needs_a_queue_redis_and_runs_every_change_in_steps() -> None:
    """REDIS_CLUSTER=true without QUEUE_REDIS_URL stops start-up with the reason (RQ cannot run on a
    cluster); with it, every change spanning slots runs in steps. Unset, nothing changes."""
    with pytest.raises(SettingsError, match="QUEUE_REDIS_URL"):
        Settings.from_env({"REDIS_CLUSTER": "true"})
    cluster = Settings.from_env({"REDIS_CLUSTER": "true", "QUEUE_REDIS_URL": "redis://queues:6379/0",
                                 "REDIS_WAIT_REPLICAS": "1"})
    assert (True, True, 1) == (cluster.redis_cluster, cluster.in_steps, cluster.redis_wait_replicas)
    alone = Settings.from_env({"REDIS_CLUSTER": "false"})
    assert (False, False, 0) == (alone.redis_cluster, alone.in_steps, alone.redis_wait_replicas)
    with pytest.raises(SettingsError, match="REDIS_WAIT_REPLICAS"):
        Settings.from_env({"REDIS_WAIT_REPLICAS": "-1"})
    assert {"REDIS_CLUSTER", "QUEUE_REDIS_URL", "REDIS_WAIT_REPLICAS"} <= known_variables()
