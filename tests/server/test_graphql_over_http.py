"""The GraphQL-over-HTTP spec audit (the npm package graphql-http's `serverAudits`) against the live server.

Needs Node.js and npm: the package is installed at a pinned version into the data folder
(`<RUSHCART_DATA_DIR>/node`) on first use. Skipped, with the reason, where either is missing or
the install fails (no network and nothing installed yet).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.stack import ROOT, Stack

GRAPHQL_HTTP = "graphql-http@1.23.1"
# graphql-http's entry module imports graphql-js (its peer dependency) even when only the audits run.
GRAPHQL_JS = "graphql@16.15.0"
AUDIT_SCRIPT = Path(__file__).with_name("graphql_http_audit.cjs")


def _node_folder() -> Path:
    return Path(os.environ.get("RUSHCART_DATA_DIR") or ROOT / ".data") / "node"


def _installed_version(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / "node_modules" / "graphql-http" / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def audit_tool() -> Path:
    """The folder holding node_modules/graphql-http at the pinned version."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("graphql-http audit skipped: Node.js and npm are not installed (apt-get install nodejs npm)")
    folder = _node_folder()
    if _installed_version(folder) != GRAPHQL_HTTP.rpartition("@")[2]:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--loglevel=error",
                 GRAPHQL_HTTP, GRAPHQL_JS],
                check=True, capture_output=True, text=True, timeout=300,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = (getattr(exc, "stderr", None) or "").strip().splitlines()[-3:]
            pytest.skip(f"graphql-http audit skipped: `npm install {GRAPHQL_HTTP}` failed: {' | '.join(output)}")
    return folder


def run_audits(folder: Path, url: str) -> list[dict[str, str | None]]:
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run([node, str(AUDIT_SCRIPT), str(folder), url], capture_output=True, text=True, timeout=300)
    assert 0 == done.returncode, done.stderr
    return list(json.loads(done.stdout))


def test_graphql_over_http_audit_passes_without_errors_or_warnings(audit_tool: Path, stack: Stack) -> None:
    """Every audit of the GraphQL-over-HTTP spec's server suite passes: no error, no warning."""
    results = run_audits(audit_tool, stack.graphql_url)
    counts = Counter(str(result["status"]) for result in results)
    failures = [f"{r['status']}: {r['id']} {r['name']}: {r['reason']}" for r in results if r["status"] != "ok"]
    print(f"graphql-http audit: {counts['ok']} ok, {counts['warn']} warnings, {counts['error']} errors, "
          f"{counts['notice']} notices")
    assert results, "the audit ran no audit"
    assert ([], 0, 0) == ([f for f in failures if not f.startswith("notice")], counts["warn"], counts["error"]), \
        "\n".join(failures)
