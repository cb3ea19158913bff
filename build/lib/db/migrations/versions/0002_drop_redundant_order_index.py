"""Drop orders_customer_recent: the primary key (customer_id, id) already serves a customer's
orders newest first (read backwards), and every persisted order paid for the second index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS orders_customer_recent")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS orders_customer_recent ON orders (customer_id, id DESC)")
