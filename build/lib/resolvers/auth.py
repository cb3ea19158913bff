"""Guest sessions, sign-up, sign-in and sign-out."""

from __future__ import annotations

from dataclasses import dataclass

from db.accounts import CustomerRecord
from db.carts import CartContents, MergeReport, customer_owner
from resolvers import carts, validate
from resolvers.context import RequestContext

SESSION_COOKIE = "sid"


@dataclass(frozen=True)
class SignedIn:
    token: str
    customer: CustomerRecord
    cart: CartContents | None = None
    merge: MergeReport | None = None


async def start_session(ctx: RequestContext) -> str:
    sid = await ctx.state.accounts.start_session(ctx.client)
    if ctx.response is not None:
        ctx.response.set_cookie(
            SESSION_COOKIE,
            sid,
            max_age=ctx.state.accounts.session_ttl_seconds,
            httponly=True,
            samesite="lax",
            secure=not ctx.state.dev_mode,
        )
    return sid


async def register(ctx: RequestContext, email: str, password: str) -> SignedIn:
    customer = await ctx.state.accounts.create_customer(
        validate.email(email), validate.password(password)
    )
    token = await ctx.state.accounts.issue_token(customer)
    # A new account starts with the guest cart it was filling, whatever it was.
    merge = await carts.merge_guest_cart(ctx, customer.id, "MERGE")
    await ctx.state.orders.load_allowance(customer.id)
    cart = await ctx.state.carts.get(customer_owner(customer.id))
    return SignedIn(token, customer, cart, merge)


async def login(ctx: RequestContext, email: str, password: str, cart_merge: str = "MERGE") -> SignedIn:
    validate.storable(password, "password")
    if len(password) > 256:
        password = password[:257]  # cannot match; keeps argon2 work bounded
    customer = await ctx.state.accounts.authenticate(validate.email(email), password, ctx.client)
    token = await ctx.state.accounts.issue_token(customer)
    merge = await carts.merge_guest_cart(ctx, customer.id, cart_merge)
    # Purchase limits are checked in Redis; loading them now keeps PostgreSQL off the buy path.
    await ctx.state.orders.load_allowance(customer.id)
    cart = await ctx.state.carts.get(customer_owner(customer.id))
    return SignedIn(token, customer, cart, merge)


async def logout(ctx: RequestContext) -> bool:
    token = ctx.bearer_token
    if token is None:
        return False
    return await ctx.state.accounts.revoke_token(token)


async def me(ctx: RequestContext) -> CustomerRecord | None:
    viewer = await ctx.viewer()
    if viewer is None:
        return None
    return await ctx.state.accounts.get_customer(viewer.customer_id)
