"""Scalars of the contract that GraphQL does not define itself, described for clients."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition

# Strawberry's own DateTime (same name, serializer and parser) with a description that says what
# clients get: every time the API answers with is a UTC instant.
DATETIME = dataclasses.replace(
    DateTimeDefinition,
    description=(
        "A date and time in ISO 8601 with its UTC offset, e.g. 2025-11-21T09:30:00.123456+00:00. "
        "Every time this API answers with is in UTC."
    ),
)

SCALARS: dict[object, ScalarDefinition] = {datetime: DATETIME}
