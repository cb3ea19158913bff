"""The caller's cart: a guest session's or a signed-in customer's."""

from __future__ import annotations

from db.carts import CartContents, MergeReport, customer_owner, guest_owner
from db.errors import InvalidInput, NotAuthenticated, ProductNotFound
from resolvers import validate
from resolvers.context import RequestContext

MERGE_STRATEGIES = ("MERGE", "KEEP_CUSTOMER_CART", "REPLACE_WITH_GUEST_CART")


async def owner(ctx: RequestContext, *, required: bool) -> str | None:
    """The cart owner of this request: the customer if signed in, else the guest session."""
    viewer = await ctx.viewer()
    if viewer is not None:
        return customer_owner(viewer.customer_id)
    if ctx.bearer_token:
        # A stale token must not silently fall back to some guest cart.
        if required:
            raise NotAuthenticated("token expired or revoked; sign in again")
        return None
    sid = await ctx.session_id()
    if sid is not None:
        return guest_owner(sid)
    if not required:
        return None
    if ctx.claimed_session_id:
        raise NotAuthenticated("unknown or expired session id; call startSession")
    raise NotAuthenticated("call startSession (or sign in) before using a cart")


async def cart(ctx: RequestContext) -> CartContents | None:
    who = await owner(ctx, required=False)
    return None if who is None else await ctx.state.carts.get(who)


async def _existing_product(ctx: RequestContext, product_id: str) -> int:
    pid = validate.product_id(product_id)
    if await ctx.products.load(pid) is None:
        raise ProductNotFound(f"no product with id {product_id}", field="productId", product_id=product_id)
    return pid


async def _check_subtotal(ctx: RequestContext, who: str, pid: int, quantity: int, *, add: bool) -> None:
    """Refuse a change after which the cart's subtotal would not fit a GraphQL Int (subtotalCents)."""
    lines = dict((await ctx.state.carts.get(who)).lines)
    lines[pid] = lines.get(pid, 0) + quantity if add else quantity
    records = await ctx.products.load_many(list(lines))
    subtotal = sum(r.price_cents * lines[r.id] for r in records if r is not None)
    if subtotal > validate.MAX_INT:
        raise InvalidInput(f"a cart's subtotal may be at most {validate.MAX_INT} cents", field="quantity",
                           product_id=pid)


async def add_line(ctx: RequestContext, product_id: str, quantity: int) -> CartContents:
    who = await owner(ctx, required=True)
    validate.quantity(quantity)
    pid = await _existing_product(ctx, product_id)
    assert who is not None
    await _check_subtotal(ctx, who, pid, quantity, add=True)
    return await ctx.state.carts.change(who, "add", pid, quantity)


async def update_line(ctx: RequestContext, product_id: str, quantity: int) -> CartContents:
    who = await owner(ctx, required=True)
    validate.quantity(quantity, allow_zero=True)
    pid = validate.product_id(product_id) if quantity == 0 else await _existing_product(ctx, product_id)
    assert who is not None
    if quantity:
        await _check_subtotal(ctx, who, pid, quantity, add=False)
    return await ctx.state.carts.change(who, "set", pid, quantity)


async def remove_line(ctx: RequestContext, product_id: str) -> CartContents:
    who = await owner(ctx, required=True)
    pid = validate.product_id(product_id)
    assert who is not None
    return await ctx.state.carts.change(who, "remove", pid)


async def clear(ctx: RequestContext) -> CartContents:
    who = await owner(ctx, required=True)
    assert who is not None
    return await ctx.state.carts.change(who, "clear")


async def merge_guest_cart(ctx: RequestContext, customer_id: int, strategy: str) -> MergeReport | None:
    """On sign-in: attach the request's guest cart (if any) to the customer's cart."""
    sid = await ctx.session_id()
    if sid is None:
        return None
    return await ctx.state.carts.merge(guest_owner(sid), customer_owner(customer_id), strategy)
