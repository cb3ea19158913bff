"""A flash sale for chaos tests: buyers registered up front, then a buying crowd that records every answer.

Buyers talk to the public API over HTTP as a storefront would. Each buyer loops until the sale is
stopped: it places an order (one or two lines) with a fresh idempotency key and keeps retrying
that same request, with that same key, on the next API process, until it gets an answer (an
order or a refusal). A request that never got an answer while the sale ran is replayed with its
key afterwards (`finish`), so the sale ends knowing exactly which orders it was answered with;
that is what makes "every accepted order is in PostgreSQL exactly once" checkable even when a
process died holding the reply. Some accepted orders are cancelled by their buyer at once, and
some are paid (or refused) through the signed payment webhook by a few provider tasks, which
resend an event with the same id until they get 200 or 202, as a payment provider does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from server.webhooks import sign
from tests.stack import TEST_ENV, eventually

PASSWORD = "chaos buyer password"
SECRET = TEST_ENV["PAYMENT_WEBHOOK_SECRET"]

REGISTER = ("mutation($e: String!, $p: String!) { register(email: $e, password: $p) "
            "{ token customer { id } errors { code message } } }")
LOGIN = ("mutation($e: String!, $p: String!) { login(email: $e, password: $p) "
         "{ token customer { id } errors { code message } } }")
PLACE = ("mutation($l: [OrderLineInput!]!, $k: String!) { placeOrder(lines: $l, idempotencyKey: $k) "
         "{ order { id status totalCents } errors { code productId available } } }")
CANCEL = "mutation($id: ID!) { cancelOrder(id: $id) { order { id status cancelReason } errors { code } } }"

Lines = tuple[tuple[int, int], ...]


class NoAnswer(Exception):
    """The request's fate is unknown: transport error, 5xx, or a top-level GraphQL error."""


@dataclass(frozen=True)
class Buyer:
    customer_id: int
    email: str
    token: str


@dataclass(frozen=True)
class SaleProduct:
    id: int
    stock: int
    price_cents: int
    max_per_customer: int | None = None


@dataclass
class Attempt:
    """One placeOrder request (one idempotency key), however many times it was sent."""

    buyer: Buyer
    key: str
    lines: Lines
    sends: int = 0
    answered: bool = False
    order_id: str | None = None
    status: str | None = None
    total_cents: int | None = None
    refusal: str | None = None
    answered_at: float | None = None  # wall clock (time.time())
    replayed_after_sale: bool = False


@dataclass
class CancelAnswer:
    order_id: str
    cancelled: bool | None  # None: no answer (the cancellation may or may not have happened)
    code: str | None = None


@dataclass
class Webhook:
    event_id: str
    order_id: str
    type: str
    amount_cents: int
    status: int | None = None  # the last HTTP status received; None: never answered
    sends: int = 0
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Endpoints:
    """The API processes, as a client-side load balancer sees them: a process that refused a
    connection is skipped for a moment."""

    base_urls: list[str]
    down_until: dict[str, float] = field(default_factory=dict)

    def pick(self, preferred: int, attempt: int) -> str:
        now = time.monotonic()
        n = len(self.base_urls)
        ordered = [self.base_urls[(preferred + attempt + i) % n] for i in range(n)]
        live = [url for url in ordered if self.down_until.get(url, 0) <= now]
        return (live or ordered)[0]

    def failed(self, url: str) -> None:
        self.down_until[url] = time.monotonic() + 1.0


class Client:
    """JSON over HTTP to /graphql and /webhooks/payments, over one shared connection pool."""

    def __init__(self, endpoints: Endpoints, connections: int) -> None:
        self.endpoints = endpoints
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(30, connect=5),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def graphql(self, query: str, variables: dict[str, Any], token: str | None, *, preferred: int = 0,
                      attempt: int = 0) -> dict[str, Any]:
        url = self.endpoints.pick(preferred, attempt)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self.http.post(f"{url}/graphql", json={"query": query, "variables": variables},
                                            headers=headers)
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.ConnectError):
                self.endpoints.failed(url)
            raise NoAnswer(f"{type(exc).__name__} from {url}") from None
        if response.status_code >= 500:
            raise NoAnswer(f"HTTP {response.status_code} from {url}")
        body = response.json()
        if body.get("errors") or not body.get("data"):
            raise NoAnswer(f"GraphQL errors from {url}: {body.get('errors')}")
        return dict(body["data"])

    async def webhook(self, body: bytes, *, preferred: int = 0, attempt: int = 0) -> int:
        url = self.endpoints.pick(preferred, attempt)
        headers = {"Content-Type": "application/json", "Payment-Signature": sign(SECRET, body)}
        try:
            response = await self.http.post(f"{url}/webhooks/payments", content=body, headers=headers)
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.ConnectError):
                self.endpoints.failed(url)
            raise NoAnswer(f"{type(exc).__name__} from {url}") from None
        if response.status_code >= 500:
            raise NoAnswer(f"HTTP {response.status_code} from {url}")
        return response.status_code


async def register_buyers(base_url: str, count: int, prefix: str, concurrency: int) -> list[Buyer]:
    """Register `count` customers through the API, `concurrency` at a time (argon2 is slow on purpose)."""
    client = Client(Endpoints([base_url]), concurrency)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Buyer:
        email = f"{prefix}-{i}@example.com"
        async with sem:
            data = await client.graphql(REGISTER, {"e": email, "p": PASSWORD}, None)
        payload = data["register"]
        assert payload["errors"] == [], payload
        return Buyer(int(payload["customer"]["id"]), email, str(payload["token"]))

    try:
        return list(await asyncio.gather(*[one(i) for i in range(count)]))
    finally:
        await client.aclose()


async def sign_in_again(base_url: str, buyers: Sequence[Buyer], concurrency: int = 4) -> list[Buyer]:
    """New tokens for the given buyers (after Redis lost theirs)."""
    client = Client(Endpoints([base_url]), concurrency)
    sem = asyncio.Semaphore(concurrency)

    async def one(buyer: Buyer) -> Buyer:
        async with sem:
            data = await client.graphql(LOGIN, {"e": buyer.email, "p": PASSWORD}, None)
        assert data["login"]["errors"] == [], data
        return Buyer(buyer.customer_id, buyer.email, str(data["login"]["token"]))

    try:
        return list(await asyncio.gather(*[one(b) for b in buyers]))
    finally:
        await client.aclose()


@dataclass(frozen=True)
class SaleMix:
    """How buyers behave: what they order, how often they cancel, how often they pay."""

    cancel_rate: float = 0.08
    pay_rate: float = 0.15
    fail_rate: float = 0.25  # of payments: payment.failed instead of payment.succeeded
    two_line_rate: float = 0.35
    providers: int = 4


class Sale:
    """The buying crowd. Use as `async with Sale(...) as sale:`; leaving the block stops the
    crowd and replays every request still without an answer (see `finish`)."""

    def __init__(self, base_urls: list[str], buyers: Sequence[Buyer], products: Sequence[SaleProduct],
                 mix: SaleMix | None = None, seed: int = 0) -> None:
        self.endpoints = Endpoints(list(base_urls))
        self.buyers = list(buyers)
        self.products = list(products)
        self.mix = mix or SaleMix()
        self.rng = random.Random(seed)
        self.client = Client(self.endpoints, len(self.buyers) + self.mix.providers + 8)
        self.stop_event = asyncio.Event()
        self.attempts: list[Attempt] = []
        self.cancels: list[CancelAnswer] = []
        self.webhooks: list[Webhook] = []
        self.errors_seen: Counter[str] = Counter()  # why requests had no answer, by kind
        self._payments: asyncio.Queue[tuple[Attempt, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.started_at = 0.0
        self.stopped_at = 0.0

    # Lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Sale:
        self.started_at = time.time()
        self._tasks = [asyncio.create_task(self._buyer(i, b)) for i, b in enumerate(self.buyers)]
        self._tasks += [asyncio.create_task(self._provider(i)) for i in range(self.mix.providers)]
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        # After a failure in the block the stack may be down: do not wait long for answers then.
        await self.finish(replay_timeout=60 if exc_type is None else 5)

    async def finish(self, replay_timeout: float = 60) -> None:
        """Stop buying, let providers finish the events they are sending, then replay every
        request that got no answer with its own idempotency key until it is answered."""
        self.stop()
        try:
            await asyncio.gather(*self._tasks)
            deadline = time.monotonic() + replay_timeout
            for attempt in [a for a in self.attempts if not a.answered]:
                attempt.replayed_after_sale = True
                await self._send_until_answered(attempt, preferred=0, deadline=deadline)
        finally:
            await self.client.aclose()

    def stop(self) -> None:
        if not self.stop_event.is_set():
            self.stop_event.set()
            self.stopped_at = time.time()

    # What happened ---------------------------------------------------------------------------

    @property
    def accepted(self) -> list[Attempt]:
        return [a for a in self.attempts if a.order_id is not None]

    @property
    def unanswered(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.answered]

    def accepted_since(self, wall_time: float) -> int:
        return sum(1 for a in self.attempts if a.order_id is not None and (a.answered_at or 0) >= wall_time)

    async def wait_accepted(self, count: int, since: float = 0.0, timeout: float = 60) -> None:
        """Wait until `count` orders were accepted after wall time `since`."""

        async def enough() -> bool:
            return self.accepted_since(since) >= count

        try:
            await eventually(enough, timeout=timeout, interval=0.02, message=f"{count} orders to be accepted")
        except AssertionError as exc:
            raise AssertionError(f"{exc} (got {self.accepted_since(since)}; {self.summary()})") from None

    def refusals(self) -> Counter[str]:
        return Counter(a.refusal for a in self.attempts if a.refusal)

    def summary(self) -> str:
        took = (self.stopped_at or time.time()) - self.started_at
        return (f"{len(self.attempts)} requests in {took:.1f}s, {len(self.accepted)} accepted, "
                f"refused {dict(self.refusals())}, {sum(a.sends - 1 for a in self.attempts)} resends, "
                f"{sum(a.replayed_after_sale for a in self.attempts)} replayed after the sale, "
                f"{len(self.cancels)} cancels, {len(self.webhooks)} webhooks, no answer: {dict(self.errors_seen)}")

    # Buyers ----------------------------------------------------------------------------------

    def _choose_lines(self) -> Lines:
        plenty, *others = self.products
        if others and self.rng.random() < self.mix.two_line_rate:
            other = self.rng.choice(others)
            return ((plenty.id, self.rng.randint(1, 2)), (other.id, self.rng.randint(1, 2)))
        product = self.rng.choice([plenty, plenty, *others])
        return ((product.id, self.rng.randint(1, 3)),)

    async def _buyer(self, index: int, buyer: Buyer) -> None:
        while not self.stop_event.is_set():
            attempt = Attempt(buyer, f"chaos-{uuid.uuid4().hex}", self._choose_lines())
            self.attempts.append(attempt)
            await self._send_until_answered(attempt, preferred=index)
            if attempt.order_id is None:
                await asyncio.sleep(0)  # a refusal comes back fast; let others run
                continue
            roll = self.rng.random()
            if roll < self.mix.cancel_rate:
                await self.cancel(attempt, preferred=index)
            elif roll < self.mix.cancel_rate + self.mix.pay_rate:
                kind = "payment.failed" if self.rng.random() < self.mix.fail_rate else "payment.succeeded"
                self._payments.put_nowait((attempt, kind))

    async def _send_until_answered(self, attempt: Attempt, preferred: int, deadline: float | None = None) -> None:
        """Send the same request (same key) until it is answered; give up when the sale stops
        (the request is replayed in `finish`) or at `deadline`."""
        variables = {"l": [{"productId": str(pid), "quantity": qty} for pid, qty in attempt.lines],
                     "k": attempt.key}
        tries = 0
        while True:
            attempt.sends += 1
            try:
                data = await self.client.graphql(PLACE, variables, attempt.buyer.token, preferred=preferred,
                                                 attempt=tries)
            except NoAnswer as exc:
                data, why = None, str(exc).split(" ", 1)[0]
            payload = data["placeOrder"] if data is not None else None
            if payload is not None and payload["errors"] and payload["errors"][0]["code"] == "TRY_AGAIN":
                # Not decided yet (a shard failing over): a storefront sends it again, with the same key.
                payload, why = None, "TRY_AGAIN"
            if payload is None:
                self.errors_seen[why] += 1
                tries += 1
                if deadline is None and self.stop_event.is_set():
                    return
                if deadline is not None and time.monotonic() > deadline:
                    return
                await asyncio.sleep(min(0.05 * 2 ** min(tries, 5), 1.0) * (0.5 + self.rng.random()))
                continue
            attempt.answered, attempt.answered_at = True, time.time()
            if payload["order"] is not None:
                order = payload["order"]
                attempt.order_id, attempt.status = str(order["id"]), str(order["status"])
                attempt.total_cents = int(order["totalCents"])
            else:
                attempt.refusal = str(payload["errors"][0]["code"]) if payload["errors"] else "NO_ORDER_NO_ERROR"
            return

    async def cancel(self, attempt: Attempt, preferred: int = 0) -> None:
        """The buyer cancels the order; the answer (or its absence) is recorded in `cancels`."""
        assert attempt.order_id is not None
        try:
            data = await self.client.graphql(CANCEL, {"id": attempt.order_id}, attempt.buyer.token,
                                             preferred=preferred)
        except NoAnswer as exc:
            self.errors_seen["cancel " + str(exc).split(" ", 1)[0]] += 1
            self.cancels.append(CancelAnswer(attempt.order_id, None))
            return
        payload = data["cancelOrder"]
        if payload["order"] is not None:
            self.cancels.append(CancelAnswer(attempt.order_id, payload["order"]["status"] == "CANCELLED"))
        else:
            self.cancels.append(CancelAnswer(attempt.order_id, False, str(payload["errors"][0]["code"])))

    # Payment provider ------------------------------------------------------------------------

    def webhook_for(self, attempt: Attempt, kind: str, event_id: str | None = None) -> Webhook:
        """A payment event for an accepted order, recorded in `webhooks` (send it with `send`)."""
        assert attempt.order_id is not None and attempt.total_cents is not None
        hook = Webhook(event_id or f"evt_chaos_{uuid.uuid4().hex}", attempt.order_id, kind, attempt.total_cents)
        self.webhooks.append(hook)
        return hook

    async def send(self, hook: Webhook, preferred: int = 0, timeout: float = 60) -> None:
        await send_webhook(self.client, hook, preferred=preferred, deadline=time.monotonic() + timeout)

    async def _provider(self, index: int) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                attempt, kind = await asyncio.wait_for(self._payments.get(), 0.2)
                await self.send(self.webhook_for(attempt, kind), preferred=index)


def webhook_body(hook: Webhook) -> bytes:
    return json.dumps({"id": hook.event_id, "type": hook.type, "created": hook.created,
                       "data": {"order_id": hook.order_id, "amount_cents": hook.amount_cents,
                                "currency": "USD"}}).encode()


async def send_webhook(client: Client, hook: Webhook, preferred: int = 0, deadline: float | None = None) -> None:
    """Send one event until it is answered (any status below 500), resending the same event id."""
    tries = 0
    deadline = deadline if deadline is not None else time.monotonic() + 60
    while True:
        hook.sends += 1
        try:
            hook.status = await client.webhook(webhook_body(hook), preferred=preferred, attempt=tries)
            return
        except NoAnswer:
            tries += 1
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(min(0.05 * 2 ** min(tries, 5), 1.0))
