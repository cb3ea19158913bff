"""Queue names. Each queue is a separate RQ list so a backlog of one kind never starves another."""

from __future__ import annotations

ORDERS = "orders"  # persistence of accepted orders: the latency that matters most
PAYMENTS = "payments"  # applying payment webhook events
MAINTENANCE = "maintenance"  # sweeps, cart write-behind, reconciliation

ALL = (ORDERS, PAYMENTS, MAINTENANCE)
