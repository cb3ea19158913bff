"""The migrated schema keeps the rules a Citus deployment needs (README, "Running on Citus").

`orders` and `order_items` would be distributed by `customer_id` and `product_stock` by
`product_id`: every primary and unique key of a distributed table must include its distribution
column. `products`, `customers` and `drops` (with `drop_products`) would be reference tables, the
only tables a foreign key may point at. The stock counter persistence decrements is not a column of the reference table.
"""

from __future__ import annotations

from typing import Any

DISTRIBUTED = {"orders": "customer_id", "order_items": "customer_id", "product_stock": "product_id"}
REFERENCE = {"products", "customers", "drops"}

# Every unique index (primary keys and unique constraints have one) of the distributed tables and
# their partitions, with the table it belongs to (a partition's parent) and its columns.
UNIQUE_INDEXES = """
SELECT coalesce(parent.relname, t.relname) AS table_name, i.relname AS index_name,
       array_agg(a.attname ORDER BY a.attname) AS columns
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
LEFT JOIN pg_inherits h ON h.inhrelid = t.oid
LEFT JOIN pg_class parent ON parent.oid = h.inhparent
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(x.indkey)
WHERE x.indisunique AND t.relnamespace = 'public'::regnamespace
  AND coalesce(parent.relname, t.relname) = ANY($1::text[])
GROUP BY 1, 2
"""

FOREIGN_KEYS = """
SELECT c.conname, c.conrelid::regclass::text AS from_table, c.confrelid::regclass::text AS to_table
FROM pg_constraint c
WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
"""


async def test_every_unique_key_of_a_distributed_table_includes_its_distribution_column(pg: Any) -> None:
    """Each primary or unique key of orders, order_items and product_stock includes its distribution column."""
    rows = await pg.fetch(UNIQUE_INDEXES, list(DISTRIBUTED))
    assert {"orders", "order_items", "product_stock"} == {r["table_name"] for r in rows}
    missing = [f"{r['table_name']}.{r['index_name']} {r['columns']}" for r in rows
               if DISTRIBUTED[r["table_name"]] not in r["columns"]]
    assert [] == missing


async def test_foreign_keys_point_only_at_reference_tables(pg: Any) -> None:
    """Every foreign key references products, customers or drops, the tables Citus would copy to every node."""
    rows = await pg.fetch(FOREIGN_KEYS)
    assert {("order_items", "products"), ("carts", "customers"), ("product_stock", "products")} <= {
        (r["from_table"], r["to_table"]) for r in rows}
    elsewhere = [f"{r['conname']}: {r['from_table']} -> {r['to_table']}"
                 for r in rows if r["to_table"] not in REFERENCE]
    assert [] == elsewhere


async def test_the_stock_counter_lives_outside_the_catalogue(pg: Any) -> None:
    """products has no stock column; product_stock holds one counter per product, never negative."""
    products = {r["attname"] for r in await pg.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'products'::regclass AND attnum > 0 AND NOT attisdropped")}
    assert "stock" not in products
    key = await pg.fetchval(
        "SELECT array_agg(a.attname) FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid "
        "AND a.attnum = ANY(x.indkey) WHERE x.indrelid = 'product_stock'::regclass AND x.indisprimary")
    assert ["product_id"] == key
    checks = await pg.fetch("SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint "
                            "WHERE conrelid = 'product_stock'::regclass AND contype = 'c'")
    assert ["CHECK ((stock >= 0))"] == [r["def"] for r in checks]


async def test_every_product_has_a_stock_row(make_product, pg: Any) -> None:
    """A product created through the API gets its stock row in the same transaction."""
    product = await make_product(stock=7)
    assert 7 == await pg.fetchval("SELECT stock FROM product_stock WHERE product_id = $1", int(product["id"]))
    orphans = await pg.fetchval(
        "SELECT count(*) FROM products p LEFT JOIN product_stock s ON s.product_id = p.id WHERE s.product_id IS NULL")
    assert 0 == orphans
