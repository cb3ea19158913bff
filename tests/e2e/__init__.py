"""Browser tests of the demo storefront (Playwright + the system Chromium)."""
