"""The load-generating process: `python -m bench.load SPEC.json RESULT.json`.

It runs apart from the orchestrator so that its CPU use is its own and the orchestrator can
watch the backlog while it runs. Each of `concurrency` tasks owns one keep-alive connection
(spread round-robin over the API processes) and sends one order after another: a random
buyer, a random product, 1 to `max_quantity` units, a fresh idempotency key.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.client import Connection, HttpError, connect
from schema.persisted import manifest

# How the GraphQL variants are asked: "persisted" sends the documentId of the server's PlaceOrder
# operation (schema/operations.graphql: the order's id, status, total, currency and payment
# deadline), as a production client would; the others send the document text: "minimal" asks for
# what the ceiling answers, "lines" adds the order's lines with their products, as an order
# confirmation page would.
PERSISTED = "persisted"
ORDER_FIELDS = {
    "minimal": "id status totalCents",
    "lines": "id status totalCents lines { quantity unitPriceCents product { id name } }",
}


def place_order_document(answer: str) -> str:
    return (
        "mutation PlaceOrder($lines: [OrderLineInput!]!, $key: String!) { "
        f"placeOrder(lines: $lines, idempotencyKey: $key) {{ order {{ {ORDER_FIELDS[answer]} }} "
        "errors { code message productId available } } }"
    )


ACCEPTED = "ACCEPTED"
# Outcomes after which the server may or may not have taken the order; the invariant check
# allows for them. Typed errors in a payload (OUT_OF_STOCK, ...) promise nothing was reserved.
UNCERTAIN_PREFIXES = ("HTTP_", "TRANSPORT_", "TIMEOUT", "GRAPHQL_ERROR", "BAD_ANSWER")


@dataclass(frozen=True)
class LoadSpec:
    kind: str  # "graphql" (rushcart, baseline) or "ceiling"
    label: str
    targets: list[tuple[str, int]]
    buyers: list[tuple[int, str]]  # customer id, bearer token
    products: list[int]
    warmup_products: list[int]
    duration: float
    requests: int  # > 0: stop after this many measured requests instead of after `duration`
    warmup: float
    concurrency: int
    max_quantity: int
    key_prefix: str
    seed: int
    timeout: float
    client: str
    answer: str = PERSISTED  # GraphQL variants: PERSISTED or a key of ORDER_FIELDS
    # > 0: requests per second over all tasks, each task sending on a schedule of its own (a
    # request that is late goes at once and the schedule does not catch up), so latency is
    # measured at a load the server can carry rather than as concurrency / throughput.
    rate: float = 0.0

    @classmethod
    def from_json(cls, raw: str) -> LoadSpec:
        data = json.loads(raw)
        data["targets"] = [tuple(t) for t in data["targets"]]
        data["buyers"] = [tuple(b) for b in data["buyers"]]
        return cls(**data)


@dataclass
class LoadResult:
    started_at: float = 0.0  # wall clock at the start of the measured phase
    ended_at: float = 0.0  # wall clock when the last measured answer arrived
    elapsed: float = 0.0
    requests: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    accepted_latencies_ms: list[float] = field(default_factory=list)
    per_second: list[dict[str, int]] = field(default_factory=list)
    last_accept_s: float | None = None
    warmup_requests: int = 0
    cpu_s: float = 0.0  # CPU this process used in the measured phase: what it took from the servers
    # Every order the servers accepted, warm-up included: [order id, product id, quantity].
    accepted: list[tuple[str, int, int]] = field(default_factory=list)
    # Requests whose fate is unknown: [product id, quantity].
    uncertain: list[tuple[int, int]] = field(default_factory=list)


def is_uncertain(outcome: str) -> bool:
    return outcome.startswith(UNCERTAIN_PREFIXES)


def parse_answer(kind: str, status: int, body: bytes) -> tuple[str, str | None]:
    """(outcome, order id): outcome is ACCEPTED, an error code from the payload, or a failure."""
    if status != 200:
        return f"HTTP_{status}", None
    try:
        doc = json.loads(body)
        payload = doc if kind == "ceiling" else (doc.get("data") or {}).get("placeOrder")
        if payload is None:
            return "GRAPHQL_ERROR", None
        order = payload.get("order")
        if order:
            return ACCEPTED, str(order["id"])
        errors = payload.get("errors") or []
        return (str(errors[0]["code"]) if errors else "BAD_ANSWER"), None
    except (ValueError, KeyError, TypeError, AttributeError):
        return "BAD_ANSWER", None


class Clock:
    """Phases of the run: warm-up, measured, stopping. Tasks ask it before each request."""

    def __init__(self) -> None:
        self.t0 = 0.0  # perf_counter at the start of the measured phase
        self.started = 0  # measured requests started
        self.stop = False

    def measuring(self) -> bool:
        return self.t0 > 0


class Load:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.clock = Clock()
        self.result = LoadResult()
        self.outcomes: Counter[str] = Counter()
        self.last_done = 0.0
        self.document = None if spec.answer == PERSISTED else place_order_document(spec.answer)
        self.document_id = manifest()["PlaceOrder"]

    def _body(self, rng: random.Random, products: list[int], key: str) -> tuple[bytes, dict[str, str], int, int]:
        cid, token = rng.choice(self.spec.buyers)
        pid = rng.choice(products)
        qty = rng.randint(1, self.spec.max_quantity)
        if self.spec.kind == "ceiling":
            body = {"customerId": cid, "productId": pid, "quantity": qty, "idempotencyKey": key}
            return json.dumps(body).encode(), {}, pid, qty
        lines = [{"productId": str(pid), "quantity": qty}]
        body = (
            {"documentId": self.document_id, "variables": {"lines": lines, "idempotencyKey": key}}
            if self.document is None
            else {"query": self.document, "operationName": "PlaceOrder", "variables": {"lines": lines, "key": key}}
        )
        return json.dumps(body).encode(), {"Authorization": f"Bearer {token}"}, pid, qty

    async def _one(self, conn: Connection, body: bytes, headers: dict[str, str]) -> tuple[str, str | None]:
        path = "/reserve" if self.spec.kind == "ceiling" else "/graphql"
        try:
            async with asyncio.timeout(self.spec.timeout):
                status, answer = await conn.post(path, body, headers)
        except TimeoutError:
            await conn.close()  # an answer may still arrive on it; never reuse
            return "TIMEOUT", None
        except HttpError as exc:
            return f"TRANSPORT_{exc}", None
        return parse_answer(self.spec.kind, status, answer)

    async def _task(self, index: int) -> None:
        spec = self.spec
        host, port = spec.targets[index % len(spec.targets)]
        conn = connect(spec.client, host, port)
        rng = random.Random(spec.seed * 1_000_003 + index)
        seq = 0
        interval = spec.concurrency / spec.rate if spec.rate > 0 else 0.0
        # Tasks spread over one interval, not all at its start.
        due = time.perf_counter() + interval * index / spec.concurrency
        try:
            while not self.clock.stop:
                if interval:
                    wait = due - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)  # the schedule's slot, not a wait for a condition
                    due = max(due + interval, time.perf_counter())
                measured = self.clock.measuring()
                if measured and spec.requests:
                    if self.clock.started >= spec.requests:
                        break
                    self.clock.started += 1
                seq += 1
                key = f"{spec.key_prefix}-{index}-{seq}"
                products = spec.products if measured or not spec.warmup_products else spec.warmup_products
                body, headers, pid, qty = self._body(rng, products, key)
                began = time.perf_counter()
                outcome, order_id = await self._one(conn, body, headers)
                done = time.perf_counter()
                self._record(measured, began, done, outcome, order_id, pid, qty)
        finally:
            await conn.close()

    def _record(self, measured: bool, began: float, done: float, outcome: str, order_id: str | None,
                pid: int, qty: int) -> None:
        r = self.result
        if order_id is not None:
            r.accepted.append((order_id, pid, qty))
        elif is_uncertain(outcome):
            r.uncertain.append((pid, qty))
        if not measured:
            r.warmup_requests += 1
            return
        latency_ms = (done - began) * 1000
        r.latencies_ms.append(latency_ms)
        self.outcomes[outcome] += 1
        second = int(done - self.clock.t0)
        while len(r.per_second) <= second:
            r.per_second.append({"accepted": 0, "rejected": 0})
        if outcome == ACCEPTED:
            r.accepted_latencies_ms.append(latency_ms)
            r.per_second[second]["accepted"] += 1
            r.last_accept_s = done - self.clock.t0
        else:
            r.per_second[second]["rejected"] += 1
        self.last_done = max(self.last_done, done)

    async def _progress(self) -> None:
        spec = self.spec
        tty = sys.stderr.isatty()
        last_line = 0.0
        while not self.clock.stop:
            await asyncio.sleep(0.5)
            if not self.clock.measuring():
                continue
            elapsed = time.perf_counter() - self.clock.t0
            done = len(self.result.latencies_ms)
            share = done / spec.requests if spec.requests else elapsed / spec.duration
            bar = "#" * int(30 * min(share, 1.0))
            line = (f"  {spec.label:<9} [{bar:<30}] {elapsed:5.1f}s {done:7d} req {done / max(elapsed, 1e-9):6.0f}/s "
                    f"accepted {self.outcomes[ACCEPTED]:6d}")
            if tty:
                sys.stderr.write("\r" + line)
                sys.stderr.flush()
            elif elapsed - last_line >= 5:
                last_line = elapsed
                print(line, file=sys.stderr, flush=True)
        if tty:
            sys.stderr.write("\n")

    async def run(self) -> LoadResult:
        spec = self.spec
        tasks = [asyncio.create_task(self._task(i)) for i in range(spec.concurrency)]
        progress = asyncio.create_task(self._progress())
        if spec.warmup > 0:
            await asyncio.sleep(spec.warmup)
        self.clock.t0 = time.perf_counter()
        self.result.started_at = time.time()
        cpu_at_start = time.process_time()
        if spec.requests:
            await asyncio.gather(*tasks)
        else:
            await asyncio.sleep(spec.duration)
            self.clock.stop = True
            await asyncio.gather(*tasks)  # in-flight requests finish and are counted
        self.clock.stop = True
        r = self.result
        r.cpu_s = time.process_time() - cpu_at_start
        await progress
        r.elapsed = max(self.last_done - self.clock.t0, 1e-9)
        r.ended_at = r.started_at + r.elapsed
        r.requests = len(r.latencies_ms)
        r.outcomes = dict(self.outcomes)
        return r


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise SystemExit("usage: python -m bench.load SPEC.json RESULT.json")
    spec = LoadSpec.from_json(Path(args[0]).read_text())
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        result = runner.run(Load(spec).run())
    Path(args[1]).write_text(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
