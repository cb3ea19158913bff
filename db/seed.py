"""The demo catalogue: a dozen products for a flash sale, inserted once."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

DEMO_PRODUCTS: list[dict[str, object]] = [
    {"sku": "SNKR-AIR-001", "name": "Aero Runner sneakers", "price_cents": 12900, "stock": 40,
     "max_per_customer": 2, "description": "Limited colourway, numbered box."},
    {"sku": "WTCH-CHR-002", "name": "Chrono field watch", "price_cents": 24900, "stock": 15,
     "max_per_customer": 1, "description": "Sapphire glass, 200 m water resistance."},
    {"sku": "HDPH-NC-003", "name": "Quiet One headphones", "price_cents": 19900, "stock": 60,
     "max_per_customer": 2, "description": "Noise cancelling, 40 h battery."},
    {"sku": "BKPK-TRL-004", "name": "Trail 28 L backpack", "price_cents": 8900, "stock": 80,
     "max_per_customer": None, "description": "Recycled nylon, lifetime repairs."},
    {"sku": "MUG-ENM-005", "name": "Enamel camp mug", "price_cents": 1900, "stock": 200,
     "max_per_customer": None, "description": "Hand-dipped, 350 ml."},
    {"sku": "KBD-MEC-006", "name": "Compact mechanical keyboard", "price_cents": 15900, "stock": 25,
     "max_per_customer": 1, "description": "Hot-swap switches, aluminium case."},
    {"sku": "LAMP-DSK-007", "name": "Arc desk lamp", "price_cents": 7400, "stock": 50,
     "max_per_customer": None, "description": "Warm dimmable LED."},
    {"sku": "JCKT-RN-008", "name": "Storm shell jacket", "price_cents": 21900, "stock": 30,
     "max_per_customer": 2, "description": "Three-layer, taped seams."},
    {"sku": "CAM-INS-009", "name": "Instant film camera", "price_cents": 9900, "stock": 20,
     "max_per_customer": 1, "description": "Comes with two packs of film."},
    {"sku": "BTL-STL-010", "name": "Steel bottle 750 ml", "price_cents": 2900, "stock": 150,
     "max_per_customer": None, "description": "Keeps cold for 24 h."},
    {"sku": "TEE-DRP-011", "name": "Drop 11 tee", "price_cents": 3500, "stock": 100,
     "max_per_customer": 3, "description": "Heavyweight cotton, one print run."},
    {"sku": "SKB-DCK-012", "name": "Maple skate deck", "price_cents": 6900, "stock": 10,
     "max_per_customer": 1, "description": "Seven-ply, artist series."},
]


async def seed_catalogue(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Insert the demo products whose sku is not there yet; returns how many were added."""
    added = 0
    async with sessions() as session, session.begin():
        for product in DEMO_PRODUCTS:
            result = await session.execute(
                text(
                    "WITH product AS (INSERT INTO products (sku, name, description, price_cents, currency,"
                    " max_per_customer, image_url) VALUES (:sku, :name, :description, :price_cents, 'USD',"
                    " :max_per_customer, :image_url) ON CONFLICT (sku) DO NOTHING RETURNING id) "
                    "INSERT INTO product_stock (product_id, stock) SELECT id, :stock FROM product"
                ),
                {**product, "image_url": None},
            )
            added += result.rowcount or 0  # type: ignore[attr-defined]
    return added
