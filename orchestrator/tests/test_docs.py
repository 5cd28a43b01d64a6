"""The documentation as a newcomer meets it: every page it cites exists, and nothing cites a file it does not hold."""

from __future__ import annotations

import re
import subprocess

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
