"""A schema Citus can distribute: the stock counter moves to `product_stock`, and the only foreign
keys left point at tables that would be reference tables.

- `product_stock (product_id, stock)` holds what persistence decrements, one row per product,
  so it can be distributed by `product_id` while `products` (the catalogue, rarely written)
  becomes a reference table copied to every node. `products.stock` goes.
- `order_items` no longer references `orders`: the pair is written only together, in one
  transaction (db.order_persistence), and orders are never deleted. Every remaining foreign key
  (order_items -> products, carts -> customers, product_stock -> products) points at a table
  that would be a reference table.
- The primary keys of `orders` and `order_items` already include `customer_id` (0001), as every
  unique key of a table distributed by `customer_id` must.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = [
    """
    CREATE TABLE product_stock (
        product_id bigint PRIMARY KEY REFERENCES products (id),
        -- Units on hand minus units held by persisted PENDING and PAID orders.
        stock integer NOT NULL CHECK (stock >= 0)
    )
    """,
    "INSERT INTO product_stock (product_id, stock) SELECT id, stock FROM products",
    "ALTER TABLE products DROP COLUMN stock",
    "ALTER TABLE order_items DROP CONSTRAINT IF EXISTS order_items_customer_id_order_id_fkey",
]

DOWNGRADE = [
    "ALTER TABLE products ADD COLUMN stock integer NOT NULL DEFAULT 0 CHECK (stock >= 0)",
    "UPDATE products p SET stock = s.stock FROM product_stock s WHERE s.product_id = p.id",
    "ALTER TABLE products ALTER COLUMN stock DROP DEFAULT",
    "DROP TABLE product_stock",
    "ALTER TABLE order_items ADD FOREIGN KEY (customer_id, order_id) REFERENCES orders (customer_id, id) "
    "ON DELETE CASCADE",
]


def upgrade() -> None:
    # asyncpg prepares each statement, so they go one at a time.
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
