"""Ranking for packs (issue 21): changelogs, lock files and generated files last unless the task
names them; the top-level README first among several."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from test_context_pack import _own_cache as _own_cache  # the fixture: a cache of the test's own
from test_context_pack import write
from xvckit.config.schema import ContextSettings
from xvckit.context.pack import build_pack

pytestmark = pytest.mark.usefixtures("tiktoken_encodings")

SETTINGS = ContextSettings()
REDIRECT_TASK = "fix how redirects drop the Authorization header"
CODE_LEVELS = ("full", "partial")


# Entries in the style of an HTTP client's changelog; many say "redirect", "header" and
# "Authorization", as httpx's does, so the file matches a task about the redirect code.
_ENTRIES = (
    "Fixed",
    "* Preserve the `Authorization` header on redirects to the same origin. (#{n})",
    "* Drop the `Authorization` header when a redirect leaves the origin. (#{n})",
    "* Strip `Content-Length` headers when a redirect switches to `GET`. (#{n})",
    "* Raise `TooManyRedirects` instead of looping on redirect cycles. (#{n})",
    "* Handle redirect responses whose `Location` header has no host. (#{n})",
    "* Set the `Host` header when redirecting across origins. (#{n})",
    "Added",
    "* `follow_redirects` on the client and per request. (#{n})",
    "* `Response.is_redirect` and `Response.has_redirect_location`. (#{n})",
    "* Event hooks also see the extra requests of redirects and authentication. (#{n})",
    "* `Headers.get_list()` for headers that appear more than once. (#{n})",
    "Changed",
    "* Redirects are followed after authentication, not before. (#{n})",
    "* Cookies are set on the client, so they survive redirects. (#{n})",
    "* Request `Authorization` headers take priority over `.netrc`. (#{n})",
    "* Timeouts are configured with `httpx.Timeout`; the old tuple form is deprecated. (#{n})",
    "* Proxies are configured per scheme with `mounts`. (#{n})",
    "* Sensitive headers are masked in the `repr` of `Headers`. (#{n})",
)


def changelog(releases: int = 90) -> str:
    """A long changelog: `releases` versions of a handful of entries each."""
    out = ["# Changelog\n\nAll notable changes to this project are documented in this file.\n"]
    for r in range(releases):
        out.append(f"\n## 0.{releases - r}.0 ({1 + r % 28} March, {2025 - r // 6})\n")
        for k in range(7):
            line = _ENTRIES[(r * 7 + k) % len(_ENTRIES)]
            out.append(
                f"\n### {line}\n" if not line.startswith("*") else line.format(n=3700 - r * 9 - k) + "\n"
            )
    return "".join(out)


@pytest.fixture
def httpx_repo(tmp_path) -> Path:
    """httpx as its sdist lays it out: the package (the installed one) and a long CHANGELOG.md."""
    repo = tmp_path / "httpx"
    shutil.copytree(Path(httpx.__file__).parent, repo / "httpx", ignore=shutil.ignore_patterns("__pycache__"))
    return write(repo, {"CHANGELOG.md": changelog(), "pyproject.toml": '[project]\nname = "httpx"\n'})


def files_of(packed) -> dict[str, dict]:
    return {entry["path"]: entry for entry in packed.as_dict()["files"]}


def test_the_redirect_code_not_the_changelog(httpx_repo):
    """The report: at a 6k budget a CHANGELOG took a third of the pack and the redirect code the
    task named was left out."""
    assert len((httpx_repo / "CHANGELOG.md").read_text()) > 20_000
    packed = build_pack(REDIRECT_TASK, httpx_repo, SETTINGS, budget=6_000)
    files = files_of(packed)
    kept = {c["name"]: c["level"] for c in files["httpx/_client.py"]["chunks"]}
    assert kept.get("_redirect_headers") in ("full", "stripped")
    # At most its outline line: that it exists, its first headings, a few tokens.
    changelog = files.get("CHANGELOG.md", {"level": "path", "tokens": 0})
    assert changelog["level"] in ("outline", "path") and changelog["tokens"] < 6_000 // 50
    assert "Preserve the `Authorization` header" not in packed.text


@pytest.mark.parametrize(
    "task",
    [
        "add a CHANGELOG entry for the fix to how redirects drop the Authorization header",
        "add a changelog entry for the fix to how redirects drop the Authorization header",
        "add the redirect Authorization fix to CHANGELOG.md",
    ],
)
def test_a_task_that_names_the_changelog_gets_it(httpx_repo, task):
    files = files_of(build_pack(task, httpx_repo, SETTINGS, budget=6_000))
    assert files["CHANGELOG.md"]["level"] in CODE_LEVELS


_CODE = "def parse_manifest(text):\n    return [line.split('==') for line in text.splitlines()]\n"


@pytest.mark.parametrize(
    ("path", "text", "naming_task"),
    [
        (
            "poetry.lock",
            '[[package]]\nname = "manifest"\nversion = "1.0"\n' * 40,
            "bump manifest in poetry.lock",
        ),
        ("package-lock.json", '{"name": "manifest", "lockfileVersion": 3}\n' * 40, "update the lock file"),
        ("proto/manifest_pb2.py", "class ParseManifest:\n    manifest = 1\n" * 40, "fix manifest_pb2.py"),
        ("web/manifest.min.js", "function parseManifest(t){return t.manifest}" * 40, "fix manifest.min.js"),
        (
            "dist/manifest.js",
            "function parseManifest(t) { return t.manifest }\n" * 40,
            "fix dist/manifest.js",
        ),
        (
            "gen/manifest.py",
            "# Code generated by protoc. DO NOT EDIT.\n" + "def parse_manifest_field():\n    pass\n" * 40,
            "fix gen/manifest.py",
        ),
    ],
)
def test_lock_and_generated_files_rank_last_unless_named(tmp_path, path, text, naming_task):
    repo = write(tmp_path / "repo", {"app/manifest.py": _CODE, path: text})
    task = "parse the manifest"
    packed = build_pack(task, repo, SETTINGS, budget=4_000)
    files = files_of(packed)
    assert files["app/manifest.py"]["level"] == "full"
    assert files["app/manifest.py"]["score"] > 10 * files.get(path, {"score": 0})["score"]
    named = files_of(build_pack(f"{naming_task}: {task}", repo, SETTINGS, budget=4_000))
    assert named[path]["level"] in CODE_LEVELS


def test_the_top_level_readme_comes_first(tmp_path):
    install = "## Install\n\nRun `pip install shop` and then `shop init` to set the install up.\n"
    repo = write(
        tmp_path / "repo",
        {
            "README.ja.md": "# Shop (日本語)\n\n" + install,
            "README.md": "# Shop\n\n" + install,
            "AGENTS.md": "# Rules\n\nKeep it short.\n",
            "docs/README.md": "# Docs\n\n" + install * 3,
            "packages/web/README.md": "# Web\n\n" + install * 3,
            "shop/cli.py": "def init():\n    pass\n",
        },
    )
    packed = build_pack("init", repo, SETTINGS, budget=4_000)
    core = [path for path, entry in files_of(packed).items() if entry["section"] == "core"]
    assert core == ["AGENTS.md", "README.md", "README.ja.md"]
    packed = build_pack("update the install steps in the README", repo, SETTINGS, budget=4_000, core=[])
    files = files_of(packed)
    readmes = sorted((p for p in files if p.endswith("README.md")), key=lambda p: -files[p]["score"])
    assert readmes[0] == "README.md" and len(readmes) == 3
    task_text = packed.blocks[2][1]
    assert task_text.index("README.md") < min(task_text.index(p) for p in readmes[1:])
