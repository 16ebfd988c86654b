"""Which files of a repository may go into a pack, and why the others may not.

The candidates are what git tracks plus untracked files it does not ignore (`git ls-files`
respects .gitignore); outside a git repository, a walk that skips hidden directories.
Binaries and huge files are left out with a reason, and so is anything that looks like a
secret: by name (.env, keys, certificates) or by content (private key blocks, provider
tokens). Secrets are never packed, whatever the budget.

Changelogs, lock files and generated files are text a task may name ("add a CHANGELOG entry",
"bump certifi in poetry.lock"), so they are indexed, but they are rarely the code a task
needs and often large: `demoted` says which they are, and the ranking puts them last unless
the task names them.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from functools import cache
from pathlib import Path

BINARY = "binary"
HUGE = "huge"
SECRET = "secret"
EXCLUDED = "excluded"  # by the user's `context.exclude` globs
CHANGELOG = "changelog"  # demoted kinds: indexed, ranked last unless the task names them
LOCK = "lock"
GENERATED = "generated"

_BINARY = (
    ".png .jpg .jpeg .gif .bmp .ico .icns .webp .tif .tiff .psd .svgz .pdf .mo .pyc .pyo .pyd .so .dll"
    " .dylib .exe .o .a .lib .obj .class .jar .war .whl .egg .zip .gz .tgz .bz2 .xz .zst .7z .rar .tar"
    " .woff .woff2 .ttf .otf .eot .mp3 .mp4 .m4a .wav .ogg .flac .avi .mov .webm .mkv .db .sqlite"
    " .sqlite3 .bin .dat .npy .npz .pkl .pickle .parquet .onnx .pt .pth .ckpt .safetensors .h5"
)
BINARY_SUFFIXES = frozenset(_BINARY.split())
_LOCKS = (
    "package-lock.json npm-shrinkwrap.json yarn.lock pnpm-lock.yaml poetry.lock Pipfile.lock uv.lock"
    " pdm.lock Cargo.lock Gemfile.lock composer.lock go.sum mix.lock flake.lock pubspec.lock"
    " packages.lock.json Podfile.lock"
)
LOCK_NAMES = frozenset(_LOCKS.split())
_GENERATED = "*.min.* *.bundle.js *.map *_pb2.py *_pb2.pyi *_pb2_grpc.py *.pb.go *.pb.cc *.pb.h PKG-INFO"
GENERATED_GLOBS = tuple(_GENERATED.split())
VENDORED_DIRS = frozenset({"dist", "vendor", "vendored", "_vendor", "third_party", "node_modules"})
GENERATED_MARKERS = re.compile(rb"@generated|DO NOT EDIT|[Aa]uto-?generated (?:file|code|by)")
_CHANGELOG_STEMS = frozenset(
    {"changelog", "changes", "history", "news", "releases", "release-notes", "release_notes", "whatsnew"}
)
_CHANGELOG_DIRS = frozenset(
    {"changelog", "changelog.d", "changes", "newsfragments", "release-notes", "releases"}
)
_DOC_SUFFIXES = frozenset({"", ".md", ".markdown", ".mdx", ".rst", ".txt", ".adoc"})
SECRET_NAMES = (
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".pgpass",
    ".htpasswd",
    "credentials",
    "credentials.json",
    "*.tfstate",
)
SECRET_CONTENT = re.compile(
    rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"
    rb"|\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"
    rb"|\bAKIA[0-9A-Z]{16}\b"
    rb"|\bgh[pousr]_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{40,}"
    rb"|\bglpat-[A-Za-z0-9_-]{20}\b"
    rb"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    rb"|\bAIza[0-9A-Za-z_-]{35}\b"
)
SNIFF_BYTES = 8192


def list_files(repo: Path) -> list[str]:
    """Repository-relative paths (POSIX separators) of the candidate files, sorted."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return _walk(repo)
    return sorted({p for p in out.decode("utf-8", "surrogateescape").split("\0") if p})


def _walk(repo: Path) -> list[str]:
    found = []
    for root, dirs, names in os.walk(repo):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules", "__pycache__")]
        rel = Path(root).relative_to(repo)
        found.extend((rel / name).as_posix() for name in names)
    return sorted(found)


@cache
def _globs(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(fnmatch.translate(p) for p in patterns) or "(?!)")


_WILDCARD = re.compile(r"[*?\[]")


@cache
def _excluder(patterns: tuple[str, ...]) -> tuple[frozenset[str], re.Pattern[str]]:
    """Patterns without wildcards as a set, the others as one regex: a batch run's thousands of
    output paths then cost a lookup each file, not thousands of regex alternatives."""
    plain = frozenset(p for p in patterns if not _WILDCARD.search(p))
    return plain, _globs(tuple(p for p in patterns if p not in plain))


def reason_by_name(path: str, exclude: tuple[str, ...] = ()) -> str | None:
    """Why `path` is left out, judged by its name alone; None if its content decides."""
    name = path.rsplit("/", 1)[-1]
    if _globs(SECRET_NAMES).match(name):
        return SECRET
    if exclude:
        plain, wild = _excluder(exclude)
        if path in plain or name in plain or wild.match(path) or wild.match(name):
            return EXCLUDED
    suffix = os.path.splitext(name)[1].lower()
    if suffix in BINARY_SUFFIXES:
        return BINARY
    return None


def demoted(path: str, generated_header: bool) -> str | None:
    """Which kind of file that tasks rarely need `path` is (changelog, lock, generated), or None.
    `generated_header`: its first lines say it is generated (GENERATED_MARKERS)."""
    *dirs, name = path.split("/")
    dirs = [d.lower() for d in dirs]
    stem, suffix = name.split(".", 1)[0].lower(), os.path.splitext(name)[1].lower()
    if suffix in _DOC_SUFFIXES and (stem in _CHANGELOG_STEMS or _CHANGELOG_DIRS.intersection(dirs)):
        return CHANGELOG
    if name in LOCK_NAMES or suffix == ".lock":
        return LOCK
    if generated_header or _globs(GENERATED_GLOBS).match(name) or VENDORED_DIRS.intersection(dirs):
        return GENERATED
    return None


def reason_by_content(data: bytes, max_bytes: int) -> str | None:
    """Why a file with these bytes is left out (binary, huge, secret), or None."""
    if len(data) > max_bytes:
        return HUGE
    head = data[:SNIFF_BYTES]
    if b"\0" in head:
        return BINARY
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return BINARY
    if SECRET_CONTENT.search(data):
        return SECRET
    return None


def generated_header(data: bytes) -> bool:
    """Whether the file's first lines say it is generated ("DO NOT EDIT", "@generated")."""
    return GENERATED_MARKERS.search(data, 0, 1024) is not None
