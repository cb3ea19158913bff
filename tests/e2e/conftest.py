"""The headless Chromium both browser suites drive, launched once per module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.browser import CHROMIUM_ARGS, chromium_executable
from tests.stack import OUTPUT, Stack


@pytest.fixture(scope="module")
async def browser(stack: Stack) -> AsyncIterator[Any]:
    # Imported here: the suites skip themselves (and never ask for this) where Playwright is missing.
    from playwright.async_api import async_playwright

    (OUTPUT / "e2e").mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_executable(), headless=True, args=CHROMIUM_ARGS,
        )
        try:
            yield launched
        finally:
            await launched.close()
