"""The WebSocket protocol handlers' own rules, on plain objects."""

from __future__ import annotations

from server.graphql_view import GraphQLTransportWSHandler


def test_an_operation_the_client_completed_first_is_forgotten_without_error() -> None:
    """The server ending an operation (its final status sent) after the client's `complete` already
    removed it is no error: Strawberry's own handler raised KeyError there, one traceback per socket."""
    handler = object.__new__(GraphQLTransportWSHandler)
    handler.operations = {"1": object(), "2": object()}
    handler.forget_id("1")
    handler.forget_id("1")  # the client's complete and the server's end crossed
    assert ["2"] == list(handler.operations)
