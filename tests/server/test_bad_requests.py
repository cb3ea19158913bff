"""Malformed requests get a 4xx with a JSON error body: on /graphql (by text and by documentId) and on
the payment webhook (correctly signed), for every class of bad input, and the server logs no traceback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from schema.persisted import manifest
from server.webhooks import sign
from tests.stack import OUTPUT, TEST_ENV, Stack

SECRET = TEST_ENV["PAYMENT_WEBHOOK_SECRET"]
PLACE_ORDER = manifest()["PlaceOrder"]
QUERY = "query($id: ID!) { product(id: $id) { id } }"
HUGE_INTEGER = b"9" * 5000  # past Python's int-from-str limit (4300 digits)
DEEP = b"[" * 30_000 + b"]" * 30_000  # past the JSON parser's recursion limit, within 64 KiB
FAIRLY_DEEP = b"[" * 40 + b"]" * 40  # parses, but deeper than any body here needs


@pytest.fixture(autouse=True)
def no_traceback_logged() -> Iterator[None]:
    """Whatever the test sends, the API server's log gains no traceback."""
    log = OUTPUT / "server.log"
    start = log.stat().st_size if log.exists() else 0
    yield
    with open(log, "rb") as f:
        f.seek(start)
        written = f.read().decode(errors="replace")
    assert "Traceback" not in written, written[-3000:]


def json_error(response: httpx.Response) -> str:
    """The error message of a /graphql refusal; fails unless the body is the JSON the spec asks for."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    [error] = response.json()["errors"]
    assert isinstance(error["message"], str) and error["message"]
    return str(error["message"])


async def post_graphql(stack: Stack, body: bytes, content_type: str | None = "application/json",
                       **headers: str) -> httpx.Response:
    if content_type is not None:
        headers["Content-Type"] = content_type
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(stack.graphql_url, content=body, headers=headers)


def both_paths(variables: bytes) -> list[bytes]:
    """The same variables sent with a document's text and with a persisted operation's id."""
    return [b'{"query": ' + json.dumps(QUERY).encode() + b', "variables": ' + variables + b"}",
            b'{"documentId": "' + PLACE_ORDER.encode() + b'", "variables": ' + variables + b"}"]


BODIES_NOT_AN_OBJECT = [b"5", b"null", b'"{ me { id } }"', b"[]", b'[{"query": "{ me { id } }"}]', b"true"]


@pytest.mark.parametrize("body", BODIES_NOT_AN_OBJECT)
async def test_json_that_is_not_an_object_is_400(stack: Stack, body: bytes) -> None:
    """A body that is JSON but not an object (number, null, string, array, boolean) is a 400."""
    response = await post_graphql(stack, body)
    assert 400 == response.status_code
    assert "JSON object" in json_error(response)


@pytest.mark.parametrize(("body", "says"), [
    (b'{"query": "{ me { id } }\xff"}', "UTF-8"),
    (b'{"documentId": "' + PLACE_ORDER.encode() + b'\xc3"}', "UTF-8"),
    ('{"query": "{ me { id } }"}'.encode("utf-16"), "UTF-8"),
    (b"", "empty"),
    (b"   ", "empty"),
    (b'{"query": "{ me { id } }"', "not valid JSON"),
    (b'{"documentId": ', "not valid JSON"),
    *[(body, "too many digits") for body in both_paths(b'{"id": ' + HUGE_INTEGER + b"}")],
    *[(body, "nested deeper") for body in both_paths(b'{"id": ' + DEEP + b"}")],
    *[(body, "nested deeper") for body in both_paths(b'{"id": ' + FAIRLY_DEEP + b"}")],
    *[(body, "not a JSON number") for body in both_paths(b'{"id": NaN}')],
    *[(body, "not a JSON number") for body in both_paths(b'{"id": -Infinity}')],
    *[(body, "beyond the range") for body in both_paths(b'{"id": 1e999}')],
])
async def test_bodies_that_do_not_decode_are_400(stack: Stack, body: bytes, says: str) -> None:
    """Not UTF-8, empty, not JSON, integers of thousands of digits, deep nesting, NaN: each a 400."""
    response = await post_graphql(stack, body)
    assert 400 == response.status_code
    assert says in json_error(response)


WRONG_TYPES = [(field, value) for field in ("variables", "extensions", "operationName")
               for value in ("a string", 5, True, ["a", "list"], {"an": "object"})
               if not isinstance(value, str if field == "operationName" else dict)]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES)
@pytest.mark.parametrize("path", ["text", "persisted"])
async def test_parameters_of_the_wrong_type_are_400(stack: Stack, field: str, value: Any, path: str) -> None:
    """`variables` and `extensions` must be objects and `operationName` a string, by text and by id."""
    body = {"query": QUERY} if path == "text" else {"documentId": PLACE_ORDER}
    response = await post_graphql(stack, json.dumps({**body, field: value}).encode())
    assert 400 == response.status_code
    assert f"`{field}`" in json_error(response)


@pytest.mark.parametrize(("body", "says"), [
    ({"query": 5}, "`query` must be a string"),
    ({"query": ["{ me { id } }"]}, "`query` must be a string"),
    ({"documentId": ["x"]}, "`documentId` must be a string"),
    ({"query": "{ me { id } }", "documentId": PLACE_ORDER}, "not both"),
    ({}, "no `query`"),
    ({"qeury": "{ me { id } }"}, "no `query`"),
])
async def test_missing_or_mistyped_query_is_400(stack: Stack, body: dict[str, Any], says: str) -> None:
    """No query or documentId, both, or one of the wrong type: a 400 naming the parameter."""
    response = await post_graphql(stack, json.dumps(body).encode())
    assert 400 == response.status_code
    assert says in json_error(response)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/graphql",
                                          "application/json; charset=latin-1"])
@pytest.mark.parametrize("path", ["text", "persisted"])
async def test_bodies_not_sent_as_utf8_json_are_415(stack: Stack, content_type: str | None, path: str) -> None:
    """A POST must be `application/json` (UTF-8): anything else is 415, whatever the body holds."""
    body = {"query": "{ me { id } }"} if path == "text" else {"documentId": PLACE_ORDER}
    response = await post_graphql(stack, json.dumps(body).encode(), content_type)
    assert 415 == response.status_code
    assert "application/json" in json_error(response) or "UTF-8" in json_error(response)


@pytest.mark.parametrize(("params", "says"), [
    ({"query": QUERY, "variables": "{not json"}, "`variables`"),
    ({"query": QUERY, "variables": "[1]"}, "`variables`"),
    ({"query": QUERY, "variables": '{"id": ' + "9" * 5000 + "}"}, "`variables`"),
    ({"query": QUERY, "extensions": "5"}, "`extensions`"),
    ({"documentId": PLACE_ORDER}, "POST"),
    ({"variables": "{}"}, "no `query`"),
])
async def test_malformed_get_requests_are_400(stack: Stack, params: dict[str, str], says: str) -> None:
    """A GET's parameters obey the same rules: `variables` and `extensions` are JSON objects."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(stack.graphql_url, params=params, headers={"Accept": "application/json"})
    assert 400 == response.status_code
    assert says in json_error(response)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
async def test_other_methods_are_405_with_allow(stack: Stack, method: str) -> None:
    """Only GET and POST reach GraphQL; other methods are 405 naming them, in JSON."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.request(method, stack.graphql_url, headers={"Content-Type": "application/json"})
    assert (405, "GET, POST") == (response.status_code, response.headers["allow"])
    if method != "HEAD":
        assert method in json_error(response)


async def test_a_body_over_the_limit_is_413_in_json(stack: Stack) -> None:
    """Past 1 MiB the body is refused while it is read, with a JSON answer."""
    response = await post_graphql(stack, b'{"query": "' + b" " * (1 << 20) + b'{ me { id } }"}')
    assert 413 == response.status_code
    assert "larger than" in json_error(response)


# The payment webhook: the same classes, each correctly signed, so only the body is wrong.

async def post_webhook(stack: Stack, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"{stack.base_url}/webhooks/payments", content=body, headers={
            "Content-Type": "application/json", "Payment-Signature": sign(SECRET, body)})


def event(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "evt_bad_request", "type": "payment.succeeded", "created": 1763700000,
                            "data": {"order_id": "none", "amount_cents": 100, "currency": "USD"}}
    for key, value in changes.items():
        if key in body["data"]:
            body["data"][key] = value
        else:
            body[key] = value
    return body


def raw_event(field: bytes, value: bytes) -> bytes:
    """An event whose `field` holds `value` verbatim (what json.dumps cannot write)."""
    return (b'{"id": "evt_raw", "type": "payment.succeeded", "created": 1763700000, '
            b'"data": {"order_id": "none", "currency": "USD", "amount_cents": 100, "' + field + b'": ' + value + b"}}")


@pytest.mark.parametrize(("body", "says"), [
    *[(body, "JSON object") for body in BODIES_NOT_AN_OBJECT],
    (b'{"id": "evt_\xff", "type": "payment.succeeded"}', "UTF-8"),
    (json.dumps(event()).encode("utf-16"), "UTF-8"),
    (b"", "empty"),
    (raw_event(b"amount_cents", HUGE_INTEGER), "too many digits"),
    (raw_event(b"extra", DEEP), "nested deeper"),
    (raw_event(b"extra", FAIRLY_DEEP), "nested deeper"),
    (raw_event(b"amount_cents", b"NaN"), "not a JSON number"),
    (raw_event(b"extra", b"1e999"), "beyond the range"),
    (json.dumps(event(id="evt_\x00")).encode(), "NUL"),
    (json.dumps(event(order_id="\ud800")).encode(), "surrogate"),
    (json.dumps(event(note={"key\x00": 1})).encode(), "NUL"),
    (json.dumps(event(created=10**30)).encode(), "created"),
    (json.dumps(event(created=-1)).encode(), "created"),
    (json.dumps(event(amount_cents=2**70)).encode(), "amount_cents"),
    (json.dumps(event(amount_cents=10**4000)).encode(), "amount_cents"),
    (json.dumps(event(id=["evt"], type=5, data=[])).encode(), "id must be"),
])
async def test_signed_malformed_events_are_400_with_a_message(stack: Stack, body: bytes, says: str) -> None:
    """A correctly signed event that is not a JSON object, not UTF-8, too deep or out of range is a 400
    `{"error": ...}` (a provider then stops retrying it), never a 500."""
    response = await post_webhook(stack, body)
    assert 400 == response.status_code
    message = response.json()["error"]
    assert isinstance(message, str) and says in message


@pytest.mark.parametrize("signature", ["t=" + "9" * 5000 + ",v1=00", "t={now},v1=\u00e9\u00e9",
                                       "t=\u00b2,v1=00", "t={now},v1=" + "\u00e9" * 64])
async def test_malformed_signature_headers_are_401(stack: Stack, signature: str) -> None:
    """A signature header with a huge, non-ASCII or non-numeric part is a 401, as any wrong signature."""
    signature = signature.replace("{now}", str(int(time.time())))
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{stack.base_url}/webhooks/payments", content=json.dumps(event()).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Payment-Signature": signature.encode("latin-1")})
    assert 401 == response.status_code
    assert response.json()["error"]
