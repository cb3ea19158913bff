"""Shoppers waiting for PAID: `python -m bench.order_watchers SUBSCRIBERS.json RECEIVED.json`.

SUBSCRIBERS.json lists {"url", "orderId", "token"}: one graphql-transport-ws connection each, the
order's owner (bearer token in `connection_init`) subscribed to `orderStatus` of that order, from
this process (so its CPU is neither the API process' nor the caller's). Prints one JSON line when
every subscriber has its first answer ({"ready": N, "pending": ..., "errors": ..., "connect_seconds":
..., "cpu_seconds": ...}), then notes the wall-clock time at which each receives PAID, with the event's `at`. When every
subscriber got PAID, or at end of stdin (the caller gave up, or is gone), it writes RECEIVED.json
({order id: [received, at]}, seconds since the epoch) and prints a last line ({"paid": ..., "errors":
..., "duplicates": ...}) and exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bench.watchers import CONNECTS_IN_FLIGHT

STATUS = "subscription($id: ID!) { orderStatus(orderId: $id) { orderId status at } }"


class Tally:
    def __init__(self, count: int) -> None:
        self.count = count
        self.ready: asyncio.Queue[None] = asyncio.Queue()
        self.pending_first = 0  # subscribers whose first answer was PENDING, as it must be
        self.received: dict[str, tuple[float, float]] = {}
        self.duplicates = 0
        self.errors: list[str] = []
        self.all_paid = asyncio.Event()

    def paid(self, order_id: str, received: float, at: float) -> None:
        if order_id in self.received:
            self.duplicates += 1
            return
        self.received[order_id] = (received, at)
        if len(self.received) == self.count:
            self.all_paid.set()


async def follow(url: str, order_id: str, token: str, gate: asyncio.Semaphore, tally: Tally) -> None:
    first = True
    try:
        async with gate:
            ws: ClientConnection = await connect(url, subprotocols=[Subprotocol("graphql-transport-ws")],
                                                 compression=None, max_queue=None, open_timeout=60)
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
            ack = json.loads(await ws.recv())
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"no connection_ack: {ack}")
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": STATUS, "variables": {"id": order_id}}}))
        async with ws:
            async for raw in ws:
                # The clock first: parsing is the client's time, not the delivery's.
                now = time.time()
                message: dict[str, Any] = json.loads(raw)
                if message["type"] == "complete":
                    break
                if message["type"] != "next" or message["payload"].get("errors"):
                    raise RuntimeError(f"unexpected message: {message}")
                change = message["payload"]["data"]["orderStatus"]
                if first:
                    first = False
                    tally.pending_first += change["status"] == "PENDING"
                    tally.ready.put_nowait(None)
                    if change["status"] != "PAID":
                        continue
                if change["status"] == "PAID":
                    tally.paid(order_id, now, datetime.fromisoformat(change["at"]).timestamp())
    except Exception as exc:  # reported, never fatal: the summary counts them
        tally.errors.append(f"{type(exc).__name__}: {exc}"[:200])
        if first:
            tally.ready.put_nowait(None)


async def main(subscribers: list[dict[str, str]], received_file: str) -> None:
    tally = Tally(len(subscribers))
    gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
    started = time.monotonic()
    tasks = [asyncio.create_task(follow(s["url"], s["orderId"], s["token"], gate, tally)) for s in subscribers]
    for _ in subscribers:
        await tally.ready.get()
    print(json.dumps({"ready": tally.count - len(tally.errors), "pending": tally.pending_first,
                      "errors": len(tally.errors), "connect_seconds": round(time.monotonic() - started, 3),
                      "cpu_seconds": time.process_time()}),
          flush=True)
    stdin_closed = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, sys.stdin.read))
    await asyncio.wait([stdin_closed, asyncio.ensure_future(tally.all_paid.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # At the end, once: nothing else runs on this loop any more.
    Path(received_file).write_text(json.dumps({oid: list(times) for oid, times in tally.received.items()}))  # noqa: ASYNC240
    print(json.dumps({"paid": len(tally.received), "errors": len(tally.errors), "duplicates": tally.duplicates,
                      "first_errors": tally.errors[:3], "cpu_seconds": time.process_time()}), flush=True)
    # The executor thread still blocks on stdin: leave without waiting for it.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m bench.order_watchers SUBSCRIBERS.json RECEIVED.json")
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2]))
