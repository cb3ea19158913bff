"""Initial tables: customers, products, carts, orders and order_items (hash-partitioned), payment_events.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _partitions() -> int:
    # Fixed at first migration: changing the modulus later means re-partitioning the data.
    return int(context.config.attributes.get("order_partitions", 16))


SCHEMA = """
        CREATE TABLE customers (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            email text NOT NULL,
            password_hash text NOT NULL,
            is_staff boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX customers_email_key ON customers (lower(email));

        CREATE TABLE products (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            sku text NOT NULL UNIQUE,
            name text NOT NULL,
            description text NOT NULL DEFAULT '',
            price_cents integer NOT NULL CHECK (price_cents >= 0),
            currency char(3) NOT NULL DEFAULT 'USD',
            stock integer NOT NULL CHECK (stock >= 0),
            max_per_customer integer CHECK (max_per_customer > 0),
            image_url text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX products_lower_name ON products (lower(name) text_pattern_ops);

        CREATE TABLE carts (
            owner text PRIMARY KEY,
            customer_id bigint REFERENCES customers (id) ON DELETE CASCADE,
            lines jsonb NOT NULL,
            updated_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL
        );
        CREATE INDEX carts_expires_at ON carts (expires_at);

        CREATE TABLE orders (
            customer_id bigint NOT NULL,
            id uuid NOT NULL,
            status text NOT NULL CHECK (status IN ('PENDING', 'PAID', 'CANCELLED')),
            cancel_reason text CHECK (cancel_reason IN ('EXPIRED', 'PAYMENT_FAILED', 'CUSTOMER', 'STAFF')),
            needs_refund boolean NOT NULL DEFAULT false,
            total_cents bigint NOT NULL CHECK (total_cents >= 0),
            currency char(3) NOT NULL,
            idempotency_key text NOT NULL,
            created_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL,
            paid_at timestamptz,
            cancelled_at timestamptz,
            persisted_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (customer_id, id),
            CHECK ((status = 'CANCELLED') = (cancel_reason IS NOT NULL))
        ) PARTITION BY HASH (customer_id);
        CREATE INDEX orders_id ON orders (id);
        CREATE INDEX orders_customer_recent ON orders (customer_id, id DESC);
        CREATE INDEX orders_pending_expiry ON orders (expires_at) WHERE status = 'PENDING';

        CREATE TABLE order_items (
            customer_id bigint NOT NULL,
            order_id uuid NOT NULL,
            product_id bigint NOT NULL REFERENCES products (id),
            quantity integer NOT NULL CHECK (quantity > 0),
            unit_price_cents integer NOT NULL CHECK (unit_price_cents >= 0),
            PRIMARY KEY (customer_id, order_id, product_id),
            FOREIGN KEY (customer_id, order_id) REFERENCES orders (customer_id, id) ON DELETE CASCADE
        ) PARTITION BY HASH (customer_id);
        CREATE INDEX order_items_product ON order_items (product_id);

        CREATE TABLE payment_events (
            id text PRIMARY KEY,
            type text NOT NULL,
            order_id text NOT NULL,
            amount_cents bigint NOT NULL,
            currency text NOT NULL,
            provider_created_at timestamptz NOT NULL,
            payload jsonb NOT NULL,
            state text NOT NULL DEFAULT 'received'
                CHECK (state IN ('received', 'applied', 'waiting', 'review', 'orphaned')),
            outcome text,
            received_at timestamptz NOT NULL DEFAULT now(),
            applied_at timestamptz
        );
        CREATE INDEX payment_events_order ON payment_events (order_id);
        CREATE INDEX payment_events_open ON payment_events (state) WHERE state IN ('received', 'waiting');
"""


def upgrade() -> None:
    # asyncpg prepares each statement, so they go one at a time.
    for statement in SCHEMA.split(";"):
        if statement.strip():
            op.execute(statement)
    n = _partitions()
    for i in range(n):
        op.execute(
            f"CREATE TABLE orders_p{i} PARTITION OF orders FOR VALUES WITH (MODULUS {n}, REMAINDER {i})"
        )
        op.execute(
            f"CREATE TABLE order_items_p{i} PARTITION OF order_items "
            f"FOR VALUES WITH (MODULUS {n}, REMAINDER {i})"
        )


def downgrade() -> None:
    op.execute("DROP TABLE payment_events, order_items, orders, carts, products, customers CASCADE")
