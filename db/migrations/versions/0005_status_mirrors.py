"""Status changes owed to Redis: an outbox written in the change's own transaction.

A cancellation or payment commits in PostgreSQL first and is mirrored into Redis after (units and
allowance given back, the cached record updated, the event published; db.order_transitions). A
commit whose reply is lost (PostgreSQL or the connection dies at that moment) or a process that
dies between the commit and the Redis step used to leave the units and the buyer's allowance
held with nothing to finish them. Each change now leaves a row here in the same transaction; the
row is deleted once the Redis step is done, and a sweeper redoes (idempotently) any row older than
a few seconds.

Keyed by `customer_id` first, like `orders`, so Citus can co-locate it with the order it mirrors.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = [
    """
    CREATE TABLE status_mirrors (
        customer_id bigint NOT NULL,
        order_id uuid NOT NULL,
        status text NOT NULL CHECK (status IN ('PAID', 'CANCELLED')),
        cancel_reason text,
        at_ms bigint NOT NULL,
        -- CANCELLED: [[product id, quantity, rebuild epoch read in the transaction], ...]
        lines jsonb NOT NULL DEFAULT '[]',
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (customer_id, order_id, status)
    )
    """,
    "CREATE INDEX status_mirrors_created_at ON status_mirrors (created_at)",
]

DOWNGRADE = ["DROP TABLE status_mirrors"]


def upgrade() -> None:
    # asyncpg prepares each statement, so they go one at a time.
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
