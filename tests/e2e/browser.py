"""Headless Chromium for the browser tests: the system's Chromium driven by Playwright for Python.

Importing this module needs nothing beyond the standard library; `missing_reason()` says why the
browser tests cannot run here (no Playwright, no Chromium), so they are skipped with that reason.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

# Debian's Chromium: Playwright's own browser downloads are not available here.
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str | None:
    """RUSHCART_CHROMIUM if set, else the first Chromium on PATH or at its Debian path."""
    configured = os.environ.get("RUSHCART_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return next((p for p in CHROMIUM_PATHS if Path(p).exists()), None)


def missing_reason() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install playwright)"
    if chromium_executable() is None:
        return "no Chromium executable found (apt-get install chromium, or set RUSHCART_CHROMIUM)"
    return None
