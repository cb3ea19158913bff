"""Drops: products sold through a waiting room with an admission policy.

- `drops` holds the policy: when the line opens (`starts_at`), how many shoppers it admits a
  second and/or how many may hold a pass at once, and how long a pass lasts. `ended_at` is set
  when staff end the drop; its products are then sold as any other.
- `drop_products` puts a product in a drop. A product is in at most one drop that has not ended:
  the unique index covers only rows whose drop is live (`ended` is copied from the drop when it
  ends, since a partial index cannot look at another table).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = [
    """
    CREATE TABLE drops (
        id bigserial PRIMARY KEY,
        name text NOT NULL,
        starts_at timestamptz NOT NULL,
        admit_per_second double precision CHECK (admit_per_second > 0),
        max_active integer CHECK (max_active > 0),
        pass_ttl_seconds integer NOT NULL CHECK (pass_ttl_seconds > 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        ended_at timestamptz,
        CHECK (admit_per_second IS NOT NULL OR max_active IS NOT NULL)
    )
    """,
    """
    CREATE TABLE drop_products (
        drop_id bigint NOT NULL REFERENCES drops (id),
        product_id bigint NOT NULL REFERENCES products (id),
        ended boolean NOT NULL DEFAULT false,
        PRIMARY KEY (drop_id, product_id)
    )
    """,
    "CREATE UNIQUE INDEX drop_products_live_product ON drop_products (product_id) WHERE NOT ended",
]

DOWNGRADE = ["DROP TABLE drop_products", "DROP TABLE drops"]


def upgrade() -> None:
    # asyncpg prepares each statement, so they go one at a time.
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
