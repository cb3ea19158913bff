"""Redis key names, each with what it holds, how long it lives and the slot it shares.

Every key a script touches shares one hash slot, so the scripts run unchanged on a Redis or Valkey
Cluster (db.buckets says why and how). The part of a name in braces is its hash tag:
    {p<pid>}    a product's keys and channel
    {b<n>}      a bucket's keys: its customers' (n = customer id mod REDIS_BUCKETS), its guest carts'
                (n from the session id), its orders' (n is carried in the order id), its queues
    {pay}       the payment queue, one for the deployment
Keys without braces are used by one command at a time, never by a script with another key.

State Redis (never evicts, AOF on):
    stock:{p<pid>}         int: units of product pid that can be reserved now. No TTL; rebuilt
                           from PostgreSQL when missing (db.stock).
    stock:held:{p<pid>}    int: units of pid held by orders not yet persisted. No TTL.
    stock:epoch:{p<pid>}   int bumped whenever the counter is rebuilt or repaired from PostgreSQL; a
                           release after a commit applies only if it is unchanged since the
                           transaction read it. No TTL.
    stock:drift:{p<pid>}   a difference the reconciler saw once and will repair if seen again. TTL 5 min.
    stock:pub:{p<pid>}     when the product's stock was last published (ms), followed by "+" while a
                           later change waits for the next publish (db.stock_events). TTL 1 day.
    pinfo:{p<pid>}         hash of the sale facts the reservation script needs: price, currency,
                           limit (max per customer, '' for none), drop (the id of the live drop the
                           product is in, '' or absent for none: then no pass is asked for). No TTL;
                           rewritten by every rebuild and catalogue change; `drop` also by creating
                           and ending a drop.
    allow:{b<n>}:<cid>     hash: product id -> units the customer holds in orders not cancelled,
                           "_r" marker. Loaded from PostgreSQL at sign-in (or on demand). TTL 30 days.
    idem:{b<n>}:<cid>:<key>  "<order id>|<request fingerprint>": the order an idempotency key made.
                           TTL 48 h (the contract promises at least 24 h).
    order:{b<n>}:<oid>     hash of an order: id, customer_id, status, lines (JSON [[pid, qty, unit
                           price], ...]), total_cents, currency, created_ms, expires_ms, fingerprint,
                           persisted (0/1), cancel_reason, paid_ms, cancelled_ms. No TTL until
                           persisted, then kept a day as a status cache. An order made before buckets
                           (a UUIDv7 id) keeps its old name, order:<oid>.
    order:released:{b<n>}:<oid>  "1" once a cancelled order's units and allowance went back to Redis,
                           so a repeated mirror step gives nothing back twice. TTL 7 days. (Old ids:
                           order:released:<oid>.)
    orders:topersist:{b<n>}  zset: ids of the bucket's accepted orders not yet in PostgreSQL, scored by
                           creation (ms). The drainers walk the buckets. (Orders made before buckets
                           wait in orders:topersist, which the sweeper still drains.)
    orders:inflight:{b<n>}:<cid>  set: the customer's order ids not yet in PostgreSQL (for `orders`).
    orders:written:{b<n>}:<cid>  the primary's WAL position (pg_lsn text) after the last commit that
                           wrote the customer's orders; the order history reads a replica only once it
                           has replayed that far (db.read_replica). Set only with DATABASE_READ_URL.
                           TTL 10 min.
    Reservations in steps (a cluster: db.reservation), each step on its own slot:
    reserving:{b<n>}:<oid>   hash: customer_id, lines (JSON [[pid, qty], ...]), state RESERVING or
                           UNDOING (the sweeper undoes it), lock (the idempotency lock's name). From
                           the first step to the commit or the undo. TTL 1 day (the sweeper ends it
                           within seconds of its deadline).
    orders:reserving:{b<n>}  zset: ids of the bucket's reservations under way, scored by the time by
                           which each must be committed (ms); the sweeper undoes those past it.
    idem:{b<n>}:<cid>:<key>:busy  the id of the reservation under way for an idempotency key, so a
                           second request with the key is told it is busy. TTL the deadline.
    stock:taken:{p<pid>}:<oid>  "<qty>|<epoch>" once a reservation's line took units of pid under that
                           rebuild epoch, "undone" once they went back (or before they were taken: a
                           late take then takes nothing). TTL 1 day.
    Status changes mirrored in steps (a cluster: db.scripts, in steps):
    stock:released:{p<pid>}:<oid>  "1" once a cancelled order's units of pid went back to the counter,
                           so a repeated or swept step gives nothing back twice. TTL 7 days.
    (A take mark stock:taken:{p<pid>}:<oid> becomes "persisted" once the order's rows are in
    PostgreSQL and its hold on stock:held was dropped.)
    replicated:{<tag>}     "1", written to a slot only to confirm by WAIT that replicas hold everything
                           before it (a replayed order, REDIS_WAIT_REPLICAS: db.replication). TTL 1 s.
    persist:pending:{b<n>} set while a persistence job for the bucket is queued, so a burst enqueues
                           one job. TTL 5 s.
    persist:lock:{b<n>}    held by the one job draining the bucket's orders:topersist. TTL 10 s,
                           renewed per batch.
    payments:toapply:{pay} zset: ids of stored webhook events not yet applied, scored by receipt (ms).
    payments:pending:{pay} set while a payment drain job is queued, so a burst enqueues one job. TTL 5 s.
    payments:lock:{pay}    held by the one job draining payments:toapply. TTL 10 s, renewed per batch.
    token:<sha256(token)>  "<customer id>:<1 if staff else 0>". TTL TOKEN_TTL_SECONDS; logout deletes it.
    ratelimit:{login}:<email>           sign-in attempts of an account from all addresses, counted
                                        before the password is checked (a success gives its count
                                        back). TTL LOGIN_WINDOW_SECONDS. The three sign-in counters
                                        are taken by one script call, so they share one tag; sign-ins
                                        are bounded by password hashing, far below one slot's rate.
    ratelimit:{login}:<email>:<client>  the same for one client address. TTL LOGIN_WINDOW_SECONDS.
    ratelimit:{login}:from:<client>     sign-in attempts from one client address, any account. TTL
                                        LOGIN_WINDOW_SECONDS.
    ratelimit:sessions:<client>         guest sessions started from one client address. TTL 60 s.
    (Guest sessions themselves hold no state: their ids are signed, see db.session_ids.)
    cart:{b<n>}:<owner>    hash of a cart; owner is "guest:<sid>" or "customer:<id>". Fields:
                           "<product id>" -> quantity, "_v" version (bumped per change), "_u"
                           last change (ms). TTL GUEST_CART_TTL_DAYS / CUSTOMER_CART_TTL_DAYS,
                           refreshed on every write.
    cart:merged:{b<n>}:<owner>  "<guest owner>|<guest cart version>|<reply JSON>": the last guest cart
                           merged into this customer's cart in steps (a cluster), so a repeat merges
                           nothing twice. TTL 1 day.
    carts:dirty:{b<n>}     zset: the bucket's owners changed since their last write to PostgreSQL,
                           scored by when they first became dirty (ms). No TTL; the flush job walks
                           the buckets and drains them.

Drops (db.drop_line): every key of drop N carries the hash tag {d<N>}, so a line and all its
state live in one slot (one shard in cluster mode) and each drop script touches one slot. The
line is a sorted set whose ranks never change once the drop has started; "admitted" is a cursor
over those ranks, so a shopper's position is their rank minus the cursor, and one small state
message per drop lets every listener work out its own position without asking Redis.
    drop:{d<N>}:conf         hash: starts_ms, rate (admissions a second, '' none), max_active ('' none),
                           pass_ttl_ms, per_buyer (units one admitted shopper may take: the largest
                           maxPerCustomer of the drop's products, 1 where none), pids (comma list),
                           ended (0/1). No TTL; rewritten from PostgreSQL when missing.
    drop:{d<N>}:line         zset: shopper ("c:<customer id>" or "s:<session id>") -> score. A joiner
                           before the start scores a random number in [0, 1) (a shuffle at the
                           start), after the start 1 + arrival number (first come, first served).
                           No TTL.
    drop:{d<N>}:seq          int: arrivals after the start, the post-start score. No TTL.
    drop:{d<N>}:state        hash: admitted (ranks given a pass so far), tokens and last_ms (the rate's
                           token bucket), used and expired (passes spent on an order, run out),
                           pub_ms, pub_sig and pub_zero (the last published state message). No TTL.
    drop:{d<N>}:passes       zset: shopper -> pass expiry (ms), the passes outstanding. No TTL; a pass
                           past its expiry leaves at the next advance and its place in the budget
                           goes to the next shopper.
    drop:{d<N>}:taken        hash: shopper -> ms, a pass an order in flight is using (taken before the
                           reservation, spent or given back after it). No TTL.
    drop:{d<N>}:spent        hash: shopper -> "USED:<order id>" or "EXPIRED": passes no longer usable.
                           No TTL.
    drops:live             set: ids of drops not ended, which each API process's ticker advances.
                           No TTL; rewritten when a drop is created or ended.
    ratelimit:drop-joins:<client>     new places in drop lines taken from one client address. TTL 60 s.

Cache Redis (may evict):
    product:<pid>          JSON of the product's catalogue fields. TTL PRODUCT_CACHE_TTL_SECONDS +-10%.

Channels (state Redis). Order and stock events travel on sharded pub/sub (SPUBLISH/SSUBSCRIBE),
each channel on its key's slot; token revocations, which every process needs, on global PUBLISH:
    events:stock:{p<pid>}  JSON {"productId", "available", "at"}: the product's latest count, at most
                           once per STOCK_PUBLISH_MS and always the last one (db.stock_events).
    events:order:{b<n>}:<oid>  JSON {"orderId", "status", "cancelReason", "at"} after every status
                           change. (Old ids: events:order:<oid>.)
    events:tokens          JSON {"revoked": "token:<digest>"} when a bearer token is revoked (logout).
    events:drop:{d<N>}     JSON drop state (db.drop_line.DropState) from whoever advances the line,
                           at most one a second unless the drop sells out, gets units back or ends.
"""

from __future__ import annotations

import hashlib

from db import buckets

# Orders made before buckets wait here until persisted; the sweeper still drains it, under the
# lock its drainers took.
LEGACY_ORDERS_TO_PERSIST = "orders:topersist"
LEGACY_PERSIST_LOCK = "persist:lock"


def _product(product_id: int | str) -> str:
    return f"{{p{product_id}}}"


def _bucket(bucket: int) -> str:
    return f"{{b{bucket}}}"


def _customer(customer_id: int) -> str:
    return f"{_bucket(buckets.of_customer(customer_id))}:{customer_id}"


def _order(order_id: str) -> str:
    bucket = buckets.of_order(order_id)
    return order_id if bucket is None else f"{_bucket(bucket)}:{order_id}"


def stock(product_id: int | str) -> str:
    return f"stock:{_product(product_id)}"


def stock_held(product_id: int | str) -> str:
    return f"stock:held:{_product(product_id)}"


def stock_epoch(product_id: int | str) -> str:
    return f"stock:epoch:{_product(product_id)}"


def stock_drift(product_id: int | str) -> str:
    return f"stock:drift:{_product(product_id)}"


def stock_published(product_id: int | str) -> str:
    return f"stock:pub:{_product(product_id)}"


def product_info(product_id: int | str) -> str:
    return f"pinfo:{_product(product_id)}"


def allowance(customer_id: int) -> str:
    return f"allow:{_customer(customer_id)}"


def idempotency(customer_id: int, key: str) -> str:
    return f"idem:{_customer(customer_id)}:{key}"


def order(order_id: str) -> str:
    return f"order:{_order(order_id)}"


def order_released(order_id: str) -> str:
    return f"order:released:{_order(order_id)}"


def orders_inflight(customer_id: int) -> str:
    return f"orders:inflight:{_customer(customer_id)}"


def orders_written(customer_id: int) -> str:
    return f"orders:written:{_customer(customer_id)}"


def orders_to_persist(bucket: int) -> str:
    return f"orders:topersist:{_bucket(bucket)}"


def orders_to_persist_of(order_id: str) -> str:
    """The queue an order waits in until persisted: its bucket's, or the old global one."""
    bucket = buckets.of_order(order_id)
    return LEGACY_ORDERS_TO_PERSIST if bucket is None else orders_to_persist(bucket)


def all_orders_to_persist() -> list[tuple[str, str]]:
    """Every to-persist queue with the lock of its drainer, the buckets' first, the old global one last."""
    return [*((orders_to_persist(b), persist_lock(b)) for b in range(buckets.count())),
            (LEGACY_ORDERS_TO_PERSIST, LEGACY_PERSIST_LOCK)]


def idempotency_lock(customer_id: int, key: str) -> str:
    return idempotency(customer_id, key) + ":busy"


def reserving(order_id: str) -> str:
    return f"reserving:{_order(order_id)}"


def orders_reserving(bucket: int) -> str:
    return f"orders:reserving:{_bucket(bucket)}"


def stock_taken(product_id: int | str, order_id: str) -> str:
    return f"stock:taken:{_product(product_id)}:{order_id}"


def stock_released(product_id: int | str, order_id: str) -> str:
    return f"stock:released:{_product(product_id)}:{order_id}"


def persist_pending(bucket: int) -> str:
    return f"persist:pending:{_bucket(bucket)}"


def persist_lock(bucket: int) -> str:
    return f"persist:lock:{_bucket(bucket)}"


PAYMENTS_TO_APPLY = "payments:toapply:{pay}"
PAYMENTS_PENDING = "payments:pending:{pay}"
PAYMENTS_LOCK = "payments:lock:{pay}"


def token(raw_token: str) -> str:
    # Only a digest is stored, so a read of Redis does not hand out usable bearer tokens.
    return "token:" + hashlib.sha256(raw_token.encode()).hexdigest()


def login_attempts(email: str, client: str | None = None) -> str:
    if client is None:
        return f"ratelimit:{{login}}:{email.lower()}"
    return f"ratelimit:{{login}}:{email.lower()}:{client}"


def login_attempts_from(client: str) -> str:
    return f"ratelimit:{{login}}:from:{client}"


def session_starts(client: str) -> str:
    return f"ratelimit:sessions:{client}"


def cart(owner: str) -> str:
    return f"cart:{_bucket(buckets.of_owner(owner))}:{owner}"


def cart_merged(owner: str) -> str:
    return f"cart:merged:{_bucket(buckets.of_owner(owner))}:{owner}"


def carts_dirty(bucket: int) -> str:
    return f"carts:dirty:{_bucket(bucket)}"


def carts_dirty_of(owner: str) -> str:
    return carts_dirty(buckets.of_owner(owner))


def _drop(drop_id: int, part: str) -> str:
    return f"drop:{{d{drop_id}}}:{part}"


def drop_conf(drop_id: int) -> str:
    return _drop(drop_id, "conf")


def drop_line(drop_id: int) -> str:
    return _drop(drop_id, "line")


def drop_seq(drop_id: int) -> str:
    return _drop(drop_id, "seq")


def drop_state(drop_id: int) -> str:
    return _drop(drop_id, "state")


def drop_passes(drop_id: int) -> str:
    return _drop(drop_id, "passes")


def drop_taken(drop_id: int) -> str:
    return _drop(drop_id, "taken")


def drop_spent(drop_id: int) -> str:
    return _drop(drop_id, "spent")


DROPS_LIVE = "drops:live"


def drop_joins(client: str) -> str:
    return f"ratelimit:drop-joins:{client}"


def product(product_id: int | str) -> str:
    return f"product:{product_id}"


TOKENS_CHANNEL = "events:tokens"


def stock_channel(product_id: int | str) -> str:
    return f"events:stock:{_product(product_id)}"


def order_channel(order_id: str) -> str:
    return f"events:order:{_order(order_id)}"


def drop_channel(drop_id: int) -> str:
    return f"events:drop:{{d{drop_id}}}"
