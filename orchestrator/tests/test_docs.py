"""The documentation as a newcomer meets it: every page it cites exists, and nothing cites a file it does not hold."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys

from testsupport.procs import ROOT

# The product's contract lives outside the repository: nothing in it may send a reader there.
OUTSIDE = re.compile("SPEC" + r"(\.md|\s*§)")
CITED_PAGE = re.compile(r"\b(docs/[a-z-]+\.md|README\.md|BENCHMARKS\.md)")
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def repository_files() -> list[str]:
    done = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [name for name in done.stdout.splitlines() if (ROOT / name).is_file()]


def text_files() -> dict[str, str]:
    files = {}
    for name in repository_files():
        try:
            files[name] = (ROOT / name).read_text()
        except UnicodeDecodeError:
            continue  # a picture
    return files


def test_repository__no_file_cites_a_document_the_repository_does_not_contain() -> None:
    files = text_files()

    outside = [name for name, text in files.items() if OUTSIDE.search(text)]
    missing = sorted(
        {(name, page) for name, text in files.items() for page in CITED_PAGE.findall(text) if page not in files}
    )

    assert outside == []
    assert missing == []


def test_docs__every_relative_link_resolves() -> None:
    pages = {name: text for name, text in text_files().items() if name.endswith(".md")}

    broken = [
        (name, target)
        for name, text in pages.items()
        for target, _ in MARKDOWN_LINK.findall(text)
        if "://" not in target and not (ROOT / name).parent.joinpath(target).resolve().exists()
    ]

    assert broken == []


# Read by the processes around the settings (the Procfile, gunicorn, the Inngest SDK), documented with them.
NOT_SETTINGS = {"PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "INNGEST_SIGNING_KEY_FALLBACK"}
# Found by listing the environment (settings.DISPATCH_FLAGS), not read by name.
PATTERNS = {"BACKGROUND_JOBS_USE_INNGEST", "CRON_<NAME>_USE_INNGEST"}
READ_VARIABLES = """
import json, os, sys
seen = set()
class Recording(dict):
    def get(self, key, default=None):
        seen.add(key)
        return super().get(key, default)
from core import environment
environment.Env.ENVIRON = Recording(os.environ)
import orchestrator.settings
print(json.dumps(sorted(seen)))
"""


def variables_settings_read() -> set[str]:
    """Return the names of the variables orchestrator/settings.py reads, watched as it is imported."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    # A PostgreSQL database and a Redis cache: the settings read their variables too (nothing connects).
    env.update(DATABASE_URL="postgres://u@db.invalid:5432/d", REDIS_URL="redis://cache.invalid:6379/0")
    done = subprocess.run(
        [sys.executable, "-c", READ_VARIABLES], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


def variables_documented() -> set[str]:
    """Return the variables named in the first column of docs/configuration.md's tables."""
    rows = [line for line in (ROOT / "docs/configuration.md").read_text().splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_<>]*)`", row.split(" | ")[0])}


def test_configuration_page__documents_every_variable_the_settings_read_and_no_other() -> None:
    read, documented = variables_settings_read(), variables_documented()

    assert len(read) > 60
    assert sorted(read - documented) == []
    assert sorted(documented - read - NOT_SETTINGS - PATTERNS) == []


def test_readme__names_what_make_test_creates_and_flushes_and_how_to_move_it() -> None:
    settings_text = (ROOT / "testsupport/settings.py").read_text()
    database = re.search(r'"DATABASE_URL", "postgres://[^"]*/([a-z_]+)"', settings_text)
    redis = re.search(r'"REDIS_URL", "redis://[^"]*/([0-9]+)"', settings_text)
    assert database is not None and redis is not None
    readme = " ".join((ROOT / "README.md").read_text().split())

    assert f"the database `test_{database[1]}`" in readme
    assert f"flush Redis db {redis[1]}" in readme
    assert "Both follow `DATABASE_URL` and `REDIS_URL`" in readme


# A PORT of the environment, and what a make running this suite (`make test`) passes down to its commands: without
# them, the make below runs as a user's in a shell.
PARENT_MAKE = ("PORT", "MAKELEVEL", "MAKEFLAGS", "MFLAGS")


def test_make_serve__takes_its_port_from_port() -> None:
    def serve_command(*args: str, **env: str) -> str:
        done = subprocess.run(
            ["make", "-n", "serve", *args],
            cwd=ROOT,
            env={**{key: value for key, value in os.environ.items() if key not in PARENT_MAKE}, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.splitlines()[-1]

    assert serve_command().endswith("runserver 127.0.0.1:8000")
    assert serve_command("PORT=8123").endswith("runserver 127.0.0.1:8123")
    assert serve_command(PORT="8124").endswith("runserver 127.0.0.1:8124")
    assert "make serve PORT=8001" in " ".join((ROOT / "README.md").read_text().split())


# The product's packages: what their modules log is what an operator greps for.
PRODUCT = ("core", "dispatch", "jobs", "runs", "orchestrator")


def actions_logged() -> set[str]:
    """Return the log actions the product's modules write: an `"action": "<name>"` of a log line's fields, or the
    `action=` a log line is written with (a bearer gate's, a triage update's)."""
    actions = set()
    for name in repository_files():
        if name.split("/")[0] not in PRODUCT or not name.endswith(".py") or "/tests/" in name or "/migrations/" in name:
            continue
        for node in ast.walk(ast.parse((ROOT / name).read_text())):
            if isinstance(node, ast.Dict):
                pairs = [(key, value) for key, value in zip(node.keys, node.values, strict=True) if key is not None]
                actions |= {_constant(value) for key, value in pairs if _constant(key) == "action"}
            elif isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"  # argparse's action=
            ):
                actions |= {_constant(kw.value) for kw in node.keywords if kw.arg == "action"}
    return actions - {""}


def _constant(node: ast.expr) -> str:
    """Return the string `node` writes literally, or "" (a name, a call, ...)."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""


def test_operations_page__documents_every_log_action_and_no_other() -> None:
    page = (ROOT / "docs/operations.md").read_text()
    table = page[page.index("| `action` | Event |") :].split("\n\n")[0]
    documented = {name for row in table.splitlines()[2:] for name in re.findall(r"`([a-z_]+)`", row.split(" | ")[0])}
    logged = actions_logged()

    assert {"status_auth", "jobs_api", "metrics_auth", "cron_auth", "publish", "reconcile"} <= logged
    assert sorted(logged - documented) == []
    assert sorted(documented - logged) == []
