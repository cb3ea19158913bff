"""Shoppers in a drop's line: `python -m bench.drop_crowd SPEC.json RESULTS.json`.

One process of the crowd (so its CPU is neither the API's nor the caller's). It starts a guest
session per shopper, prints {"ready": N}, then reads one line from stdin:
{"t0": <unix time>, "drop_id": ..., "product_id": ...}.
Each shopper then arrives at t0 + its offset, as a browser would: `joinDrop` over HTTP, then its
own graphql-transport-ws connection subscribed to `dropLine`; when told ADMITTED it buys one unit
with `placeOrder` (a registered buyer's token plus the session, whose pass the order uses), if the
spec says to buy. Once every shopper is settled (bought, or told SOLD_OUT; with `buy` false: has
its first event) it prints {"settled": N, ...}; the subscriptions stay open until stdin closes,
then it writes every shopper's record to RESULTS.json and prints {"done": N}.

Times are `time.time()`, the clock the caller and Redis share on this machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from bench.client import HttpError, RawConnection

JOIN = ("mutation($d: ID!) { joinDrop(dropId: $d) { line { status position unitsLeft lineLength } "
        "errors { code } } }")
START = "mutation { startSession { sessionId } }"
LINE = ("subscription($d: ID!) { dropLine(dropId: $d) { status position unitsLeft lineLength passExpiresAt } }")
ORDER = ("mutation($l: [OrderLineInput!]!, $k: String!) { placeOrder(lines: $l, idempotencyKey: $k) "
         "{ order { id } errors { code position } } }")
HTTP_CONNECTIONS = 24
CONNECTS_IN_FLIGHT = 64
TOLD = ("SOLD_OUT", "LIKELY_SOLD_OUT")


@dataclass
class Shopper:
    index: int  # arrival order as scheduled over the whole crowd
    sid: str = ""
    join_sent: float = 0.0
    join_done: float = 0.0
    join_outcome: str = ""
    join_status: str = ""  # the line's status in the join's answer
    subscribed: float = 0.0  # first event of the subscription
    admitted: float = 0.0
    told: float = 0.0  # first SOLD_OUT or LIKELY_SOLD_OUT, from the join's answer or an event
    sold_out: float = 0.0  # first SOLD_OUT
    order_sent: float = 0.0
    order_done: float = 0.0
    order_outcome: str = ""
    ws_error: str = ""
    # Every event after the first: [receipt time, status, position, lineLength, unitsLeft].
    updates: list[list[Any]] = field(default_factory=list)


class Http:
    """A pool of keep-alive connections shared by the shoppers of this process."""

    def __init__(self, host: str, ports: list[int], size: int) -> None:
        self._pool: asyncio.Queue[RawConnection] = asyncio.Queue()
        for i in range(size):
            self._pool.put_nowait(RawConnection(host, ports[i % len(ports)]))
        # Each answer's time and outcome: what the API answered, refused or failed, second by second.
        self.answers: list[tuple[float, str]] = []

    async def call(self, query: str, variables: dict[str, Any], headers: dict[str, str],
                   field_name: str) -> tuple[str, dict[str, Any] | None, float]:
        """(outcome, payload, time sent): outcome OK, a payload error's code, HTTP_<status>, or a failure."""
        conn = await self._pool.get()
        sent = time.time()
        try:
            status, body = await conn.post("/graphql", json.dumps({"query": query, "variables": variables}).encode(),
                                           headers)
        except HttpError as exc:
            outcome, payload = f"TRANSPORT_{exc}", None
        else:
            outcome, payload = _outcome(status, body, field_name)
        finally:
            self._pool.put_nowait(conn)
        self.answers.append((time.time(), outcome))
        return outcome, payload, sent

    async def close(self) -> None:
        while not self._pool.empty():
            await self._pool.get_nowait().close()


def _outcome(status: int, body: bytes, field_name: str) -> tuple[str, dict[str, Any] | None]:
    if status != 200:
        return f"HTTP_{status}", None
    try:
        doc = json.loads(body)
        payload = (doc.get("data") or {}).get(field_name)
        if payload is None:
            return "GRAPHQL_ERROR", None
        errors = payload.get("errors") or []
        return (str(errors[0]["code"]) if errors else "OK"), payload
    except (ValueError, KeyError, TypeError, AttributeError):
        return "BAD_ANSWER", None


class Crowd:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.http = Http("127.0.0.1", spec["ports"], HTTP_CONNECTIONS)
        self.shoppers = [Shopper(i) for i in spec["indices"]]
        self.settled: asyncio.Queue[None] = asyncio.Queue()
        self.gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        self.drop_id = ""
        self.product_id = ""

    async def start_sessions(self) -> None:
        gate = asyncio.Semaphore(16)

        async def start(shopper: Shopper) -> None:
            async with gate:
                outcome, payload, _ = await self.http.call(START, {}, {}, "startSession")
            if payload is None:
                raise SystemExit(f"startSession failed: {outcome}")
            shopper.sid = str(payload["sessionId"])

        await asyncio.gather(*(start(s) for s in self.shoppers))
        self.http.answers.clear()

    def settle(self, shopper: Shopper, done: list[bool]) -> None:
        if not done[0]:
            done[0] = True
            self.settled.put_nowait(None)

    async def run(self, shopper: Shopper, t0: float, offset: float) -> None:
        done = [False]
        try:
            await self._run(shopper, t0, offset, done)
        except Exception as exc:  # reported, never fatal: the caller counts them
            shopper.ws_error = shopper.ws_error or type(exc).__name__
        finally:
            self.settle(shopper, done)

    async def _run(self, shopper: Shopper, t0: float, offset: float, done: list[bool]) -> None:
        # Pacing the arrivals on the schedule, not synchronisation.
        await asyncio.sleep(max(0.0, t0 + offset - time.time()))
        headers = {"X-Session-Id": shopper.sid}
        outcome, payload, shopper.join_sent = await self.http.call(JOIN, {"d": self.drop_id}, headers, "joinDrop")
        shopper.join_done, shopper.join_outcome = time.time(), outcome
        if outcome != "OK" or payload is None:
            return
        shopper.join_status = payload["line"]["status"]
        if shopper.join_status in TOLD:
            shopper.told = shopper.join_done
        buy = bool(self.spec["buy"])
        ordering: asyncio.Task[None] | None = None
        if shopper.join_status == "ADMITTED":
            # Told by the join itself: buy at once, as the page's button allows, not after the socket opens.
            shopper.admitted = shopper.join_done
            if buy:
                ordering = asyncio.create_task(self._buy(shopper, done))
        async with self.gate:
            ws = await connect(self._ws_url(shopper.index), subprotocols=[Subprotocol("graphql-transport-ws")],
                               compression=None, max_queue=None, open_timeout=120)
            await ws.send(json.dumps({"type": "connection_init", "payload": {"X-Session-Id": shopper.sid}}))
            await ws.recv()
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": LINE, "variables": {"d": self.drop_id}}}))
        try:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] in ("complete", "error"):
                    if message["type"] == "error":
                        shopper.ws_error = "SUBSCRIPTION_ERROR"
                    break
                if message["type"] != "next":
                    continue
                now = time.time()
                line = message["payload"]["data"]["dropLine"]
                status = line["status"]
                if not shopper.subscribed:
                    shopper.subscribed = now
                    if not buy:
                        self.settle(shopper, done)
                else:
                    shopper.updates.append([round(now, 4), status, line["position"], line["lineLength"],
                                            line["unitsLeft"]])
                if status in TOLD and not shopper.told:
                    shopper.told = now
                if status == "SOLD_OUT" and not shopper.sold_out:
                    shopper.sold_out = now
                    self.settle(shopper, done)
                if status == "ADMITTED" and not shopper.admitted:
                    shopper.admitted = now
                    if buy:
                        ordering = asyncio.create_task(self._buy(shopper, done))
            # The subscription ended (PURCHASED, ENDED): stay until the caller lets go, as a page would.
            await asyncio.Event().wait()
        finally:
            if ordering is not None:
                await ordering
            await ws.close()

    def _ws_url(self, index: int) -> str:
        ports: list[int] = self.spec["ports"]
        return f"ws://127.0.0.1:{ports[index % len(ports)]}/graphql"

    async def _buy(self, shopper: Shopper, done: list[bool]) -> None:
        tokens: list[str] = self.spec["tokens"]
        headers = {"Authorization": f"Bearer {tokens[shopper.index % len(tokens)]}", "X-Session-Id": shopper.sid}
        outcome, _, shopper.order_sent = await self.http.call(
            ORDER, {"l": [{"productId": self.product_id, "quantity": 1}], "k": uuid.uuid4().hex}, headers,
            "placeOrder")
        shopper.order_done, shopper.order_outcome = time.time(), outcome
        self.settle(shopper, done)


async def main(spec_file: str, results_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())  # noqa: ASYNC240 - before anything runs
    crowd = Crowd(spec)
    await crowd.start_sessions()
    print(json.dumps({"ready": len(crowd.shoppers)}), flush=True)
    loop = asyncio.get_running_loop()
    go = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    t0, crowd.drop_id, crowd.product_id = float(go["t0"]), str(go["drop_id"]), str(go["product_id"])
    offsets: list[float] = spec["offsets"]
    tasks = [asyncio.create_task(crowd.run(s, t0, offsets[i])) for i, s in enumerate(crowd.shoppers)]
    for _ in crowd.shoppers:
        await crowd.settled.get()
    print(json.dumps({"settled": len(crowd.shoppers), "at": time.time()}), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await crowd.http.close()
    Path(results_file).write_text(json.dumps({  # noqa: ASYNC240 - at the end, nothing else runs
        "shoppers": [asdict(s) for s in crowd.shoppers], "answers": crowd.http.answers}))
    print(json.dumps({"done": len(crowd.shoppers)}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m bench.drop_crowd SPEC.json RESULTS.json")
    asyncio.run(main(sys.argv[1], sys.argv[2]))
