"""Persisted operations over HTTP: sent by documentId, answered exactly as the document text is."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.extensions import SchemaExtension

from schema import Limits, build_schema
from schema.persisted import OPERATIONS_FILE, PersistedOperations, manifest, split
from server.graphql_view import RushcartGraphQL
from server.state import AppState
from tests.api import Api
from tests.conftest import unique

IDS = manifest()
TEXTS = dict(split(OPERATIONS_FILE.read_text()))


async def post(api: Api, body: dict[str, Any] | bytes) -> tuple[int, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        if isinstance(body, bytes):
            response = await client.post(api.url, content=body, headers={**api.headers(),
                                                                          "Content-Type": "application/json"})
        else:
            response = await client.post(api.url, json=body, headers=api.headers())
    return response.status_code, response.json()


async def both(api: Api, name: str, variables: dict[str, Any]) -> tuple[tuple[int, Any], tuple[int, Any]]:
    """The same operation by documentId and by its text."""
    by_id = await post(api, {"documentId": IDS[name], "variables": variables})
    by_text = await post(api, {"query": TEXTS[name], "variables": variables, "operationName": name})
    return by_id, by_text


async def test_place_order_by_document_id_is_the_same_order_as_by_text(api: Api, make_product) -> None:
    """A replay of the idempotency key by text returns the very answer the documentId got."""
    buyer = await api.register(f"{unique('persisted')}@example.com")
    product = await make_product(stock=5, price_cents=1250)
    variables = {"lines": [{"productId": product["id"], "quantity": 2}], "idempotencyKey": unique("k")}
    (status, by_id), (text_status, by_text) = await both(buyer, "PlaceOrder", variables)
    assert 200 == status == text_status
    order = by_id["data"]["placeOrder"]["order"]
    assert order["status"] == "PENDING" and order["totalCents"] == 2500 and order["currency"] == "USD"
    assert by_id == by_text


@pytest.mark.parametrize("case", ["out_of_stock", "not_signed_in", "bad_key", "unknown_product"])
async def test_refusals_are_the_same_by_document_id_and_by_text(api: Api, make_product, case: str) -> None:
    buyer = await api.register(f"{unique('persisted')}@example.com")
    product = await make_product(stock=1)
    lines = [{"productId": product["id"], "quantity": 2 if case == "out_of_stock" else 1}]
    if case == "unknown_product":
        lines = [{"productId": "999999999", "quantity": 1}]
    key = "not a valid key!" if case == "bad_key" else unique("k")
    caller = api.as_() if case == "not_signed_in" else buyer
    (status, by_id), (_, by_text) = await both(caller, "PlaceOrder", {"lines": lines, "idempotencyKey": key})
    assert 200 == status
    payload = by_id["data"]["placeOrder"]
    assert payload["order"] is None and len(payload["errors"]) == 1
    expected = {"out_of_stock": "OUT_OF_STOCK", "not_signed_in": "NOT_AUTHENTICATED", "bad_key": "INVALID_INPUT",
                "unknown_product": "PRODUCT_NOT_FOUND"}[case]
    assert payload["errors"][0]["code"] == expected
    assert by_id == by_text


@pytest.mark.parametrize("variables", [
    {},
    {"lines": [{"productId": "1", "quantity": "two"}], "idempotencyKey": "k"},
    {"lines": "nope", "idempotencyKey": 5},
])
async def test_bad_variables_get_the_same_errors_and_buy_nothing(api: Api, variables: dict[str, Any]) -> None:
    buyer = await api.register(f"{unique('persisted')}@example.com")
    (status, by_id), (text_status, by_text) = await both(buyer, "PlaceOrder", variables)
    assert status == text_status
    assert by_id["data"] is None and by_id["errors"]
    assert by_id == by_text


async def test_an_operation_without_a_plan_answers_as_its_text(api: Api, make_product) -> None:
    """ProductAvailability reads a resolver field, so it runs through Strawberry: same answer."""
    product = await make_product(stock=7)
    (status, by_id), (_, by_text) = await both(api, "ProductAvailability", {"id": product["id"]})
    assert 200 == status
    assert by_id == {"data": {"product": {"id": product["id"], "available": 7}}} == by_text


async def test_cancel_and_status_by_document_id(api: Api, make_product) -> None:
    buyer = await api.register(f"{unique('persisted')}@example.com")
    product = await make_product(stock=3)
    _, placed = await post(buyer, {"documentId": IDS["PlaceOrder"], "variables": {
        "lines": [{"productId": product["id"], "quantity": 1}], "idempotencyKey": unique("k")}})
    order_id = placed["data"]["placeOrder"]["order"]["id"]
    _, cancelled = await post(buyer, {"documentId": IDS["CancelOrder"], "variables": {"id": order_id}})
    assert cancelled["data"]["cancelOrder"]["order"]["status"] == "CANCELLED"
    assert cancelled["data"]["cancelOrder"]["order"]["cancelReason"] == "CUSTOMER"
    (_, status), (_, by_text) = await both(buyer, "OrderStatus", {"id": order_id})
    assert status == {"data": {"order": {"id": order_id, "status": "CANCELLED", "cancelReason": "CUSTOMER"}}}
    assert status == by_text
    # Someone else's order is not theirs to read, by id as by text.
    stranger = await api.register(f"{unique('persisted')}@example.com")
    (_, theirs), _ = await both(stranger, "OrderStatus", {"id": order_id})
    assert theirs == {"data": {"order": None}}


@pytest.mark.parametrize(("body", "code", "says"), [
    ({"documentId": "sha256:" + "0" * 64}, "PERSISTED_DOCUMENT_NOT_FOUND", "unknown documentId"),
    ({"documentId": IDS["OrderStatus"], "query": "{ me { id } }"}, "BAD_REQUEST", "not both"),
    ({"documentId": IDS["OrderStatus"], "operationName": "Other"}, "BAD_REQUEST", "does not match"),
    ({"documentId": IDS["OrderStatus"], "variables": [1, 2]}, "BAD_REQUEST", "variables"),
    ({"documentId": 7}, "BAD_REQUEST", "must be a string"),
])
async def test_malformed_persisted_requests_get_a_400_with_a_message(api: Api, body: Any, code: str,
                                                                     says: str) -> None:
    status, answer = await post(api, body)
    assert 400 == status
    [error] = answer["errors"]
    assert error["extensions"]["code"] == code and says in error["message"]


async def test_an_oversized_body_is_refused_with_413(api: Api) -> None:
    """Any POST to /graphql, persisted or not: the server stops reading past 1 MiB."""
    body = b'{"query": "{ me { id } }", "variables": {"pad": "' + b"x" * (1 << 20) + b'"}}'
    status, answer = await post(api, body)
    assert 413 == status
    assert answer["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    # The next request on a fresh connection is served as usual.
    assert (await api("{ products(first: 1) { edges { node { id } } } }"))["products"] is not None


async def test_bodies_that_only_mention_document_id_are_ordinary_requests(api: Api, make_product) -> None:
    """A document or its variables may contain the word; only a top-level `documentId` counts."""
    product = await make_product(stock=2)
    query = 'query($id: ID!) { product(id: $id) { id available } }'
    status, answer = await post(api, {"query": query, "variables": {"id": product["id"], "documentId": "x"}})
    assert 200 == status and answer == {"data": {"product": {"id": product["id"], "available": 2}}}
    # Malformed JSON that mentions it is refused as any malformed body is.
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(api.url, content=b'{"documentId": ', headers={"Content-Type": "application/json"})
    assert 400 == response.status_code


async def test_a_persisted_request_must_be_json(api: Api, make_product) -> None:
    """Like any POST to /graphql: a text/plain body (what a cross-site form can send) is refused."""
    buyer = await api.register(f"{unique('persisted')}@example.com")
    product = await make_product(stock=1)
    body = json.dumps({"documentId": IDS["PlaceOrder"], "variables": {
        "lines": [{"productId": product["id"], "quantity": 1}], "idempotencyKey": unique("k")}})
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(api.url, content=body, headers={**buyer.headers(), "Content-Type": "text/plain"})
    assert 400 <= response.status_code < 500
    # Nothing was bought.
    (_, answer), _ = await both(buyer, "ProductAvailability", {"id": product["id"]})
    assert answer["data"]["product"]["available"] == 1


class RecordsExecution(SchemaExtension):
    """What a tracing or auditing extension does: hook every operation's execution."""

    operations: ClassVar[list[str | None]] = []

    def on_execute(self) -> Iterator[None]:
        yield
        RecordsExecution.operations.append(self.execution_context.operation_name)


def _graphql_app(state: AppState, *extra: Callable[[], SchemaExtension]) -> tuple[Starlette, PersistedOperations]:
    """The GraphQL endpoint as server.app builds it, in this process, on the stack's stores."""
    schema = build_schema(Limits(), extra_extensions=extra)
    view = RushcartGraphQL(schema)
    view.persisted = PersistedOperations.load(schema, Limits())
    app = Starlette(routes=[Route("/graphql", view, methods=["POST"])])
    app.state.rushcart = state
    return app, view.persisted


async def test_an_extension_hooking_execution_runs_for_a_persisted_purchase(api: Api, make_product,
                                                                            state: AppState) -> None:
    """With an on_execute extension PlaceOrder is not planned: it runs through Strawberry, extension included."""
    buyer = await api.register(f"{unique('persisted')}@example.com")
    product = await make_product(stock=2)
    app, persisted = _graphql_app(state, RecordsExecution)
    operation = persisted.get(IDS["PlaceOrder"])
    assert operation is not None and operation.compiled is None
    RecordsExecution.operations.clear()
    body = {"documentId": IDS["PlaceOrder"], "variables": {
        "lines": [{"productId": product["id"], "quantity": 1}], "idempotencyKey": unique("k")}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rushcart") as client:
        response = await client.post("/graphql", json=body, headers=buyer.headers())
    assert 200 == response.status_code
    assert response.json()["data"]["placeOrder"]["order"]["status"] == "PENDING"
    assert ["PlaceOrder"] == RecordsExecution.operations


RESPONSE_JSON = {"Accept": "application/graphql-response+json"}


async def post_preferring_graphql_response(api: Api, body: dict[str, Any]) -> tuple[int, str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(api.url, json=body, headers={**api.headers(), **RESPONSE_JSON})
    return response.status_code, response.headers["content-type"], response.json()


@pytest.mark.parametrize("variables", [
    {},
    {"lines": [{"productId": "1", "quantity": "two"}], "idempotencyKey": "k"},
    {"lines": "nope", "idempotencyKey": 5},
])
async def test_request_errors_are_the_same_400_by_document_id_and_by_text(api: Api,
                                                                          variables: dict[str, Any]) -> None:
    """With application/graphql-response+json, variables that do not coerce are a 400 without `data`,
    by documentId as by text."""
    buyer = await api.register(f"{unique('persisted')}@example.com")
    by_id = await post_preferring_graphql_response(buyer, {"documentId": IDS["PlaceOrder"], "variables": variables})
    by_text = await post_preferring_graphql_response(buyer, {"query": TEXTS["PlaceOrder"], "variables": variables,
                                                             "operationName": "PlaceOrder"})
    status, media_type, answer = by_id
    assert (400, "application/graphql-response+json") == (status, media_type)
    assert "data" not in answer and answer["errors"]
    assert by_id == by_text


async def test_executed_operations_are_the_same_200_by_document_id_and_by_text(api: Api, make_product) -> None:
    """With application/graphql-response+json, a refusal in the payload is a 200 either way, same answer."""
    product = await make_product(stock=1)
    variables = {"lines": [{"productId": product["id"], "quantity": 1}], "idempotencyKey": unique("k")}
    caller = api.as_()  # not signed in: NOT_AUTHENTICATED in the payload, nothing bought
    by_id = await post_preferring_graphql_response(caller, {"documentId": IDS["PlaceOrder"], "variables": variables})
    by_text = await post_preferring_graphql_response(caller, {"query": TEXTS["PlaceOrder"], "variables": variables})
    status, media_type, answer = by_id
    assert (200, "application/graphql-response+json") == (status, media_type)
    assert "NOT_AUTHENTICATED" == answer["data"]["placeOrder"]["errors"][0]["code"]
    assert by_id == by_text
    # The plan-less path (ProductAvailability runs through Strawberry) answers the same way.
    found = await post_preferring_graphql_response(api, {"documentId": IDS["ProductAvailability"],
                                                         "variables": {"id": product["id"]}})
    assert (200, "application/graphql-response+json", {"data": {"product": {"id": product["id"], "available": 1}}}) \
        == found
