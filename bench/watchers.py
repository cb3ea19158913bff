"""A crowd watching a product's stock: `python -m bench.watchers GRAPHQL_URL PRODUCT_ID N [DELAYS.json]`.

Opens N graphql-transport-ws connections, each subscribed to `productStock`, from this process
(so their CPU is not the API process' nor the caller's). Prints one JSON line when every watcher
has its first event ({"ready": N, "connect_seconds": ...}), then counts the changes each receives
and how late (receipt time minus the event's `at`). On end of stdin it prints a last line
({"events": ..., "delivery_ms": {"p50": ..., "p99": ...}, "errors": ...}) and exits; with
DELAYS.json it also writes every delay there (milliseconds), so that several crowds' delays can be
pooled into one percentile. A closed stdin (the caller gone, even killed) ends it the same way.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

STOCK = "subscription($id: ID!) { productStock(productId: $id) { productId available at } }"
CONNECTS_IN_FLIGHT = 64


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def watch(url: str, product_id: str, gate: asyncio.Semaphore, ready: asyncio.Queue[None],
                delays: list[float], errors: list[str]) -> None:
    try:
        async with gate:
            ws: ClientConnection = await connect(url, subprotocols=[Subprotocol("graphql-transport-ws")],
                                                 compression=None, max_queue=None, open_timeout=60)
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            await ws.recv()
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": STOCK, "variables": {"id": product_id}}}))
        first = True
        async for raw in ws:
            message: dict[str, Any] = json.loads(raw)
            if message["type"] != "next":
                continue
            if first:
                first = False
                ready.put_nowait(None)
                continue
            at = datetime.fromisoformat(message["payload"]["data"]["productStock"]["at"]).timestamp()
            delays.append(time.time() - at)
    except Exception as exc:  # reported, never fatal: the summary counts them
        errors.append(type(exc).__name__)
        ready.put_nowait(None)


async def main(url: str, product_id: str, count: int, delays_file: str | None = None) -> None:
    gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
    ready: asyncio.Queue[None] = asyncio.Queue()
    delays: list[float] = []
    errors: list[str] = []
    started = time.monotonic()
    tasks = [asyncio.create_task(watch(url, product_id, gate, ready, delays, errors)) for _ in range(count)]
    for _ in range(count):
        await ready.get()
    print(json.dumps({"ready": count - len(errors), "connect_seconds": round(time.monotonic() - started, 3)}),
          flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if delays_file:
        # At the end, once: nothing else runs on this loop any more.
        Path(delays_file).write_text(json.dumps([round(d * 1000, 2) for d in delays]))  # noqa: ASYNC240
    print(json.dumps({"events": len(delays), "errors": len(errors),
                      "delivery_ms": {"p50": round(percentile(delays, 0.5) * 1000, 1),
                                      "p99": round(percentile(delays, 0.99) * 1000, 1)}}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        raise SystemExit("usage: python -m bench.watchers GRAPHQL_URL PRODUCT_ID N [DELAYS.json]")
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) == 5 else None))
