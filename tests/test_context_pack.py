"""Index, ranking and packs (issue 6): budgets, secrets, incremental re-index, CLI JSON, prefix stability."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xvckit.config.schema import ContextSettings
from xvckit.context.index import build
from xvckit.context.pack import build_pack
from xvckit.context.tokens import count
from xvckit.errors import UserError

pytestmark = pytest.mark.usefixtures("tiktoken_encodings")

SETTINGS = ContextSettings()


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def write(repo: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return repo


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def service_repo(root: Path) -> Path:
    """A small git repository: a billing service, an unrelated parser, docs, and secrets."""
    repo = write(
        root / "repo",
        {
            "README.md": "# Shop\n\nA shop service.\n\n## Development\n\nRun `make test`.\n",
            "AGENTS.md": "# Rules\n\nKeep functions small.\n",
            "shop/billing.py": (
                "from shop.tax import vat_rate\n\n\ndef invoice_total(items, country):\n"
                '    """The invoice total with VAT."""\n'
                "    net = sum(item.price * item.quantity for item in items)\n"
                "    return net * (1 + vat_rate(country))\n\n\n"
                + "".join(f"def helper_{i}(x):\n    return x + {i}\n\n\n" for i in range(40))
            ),
            "shop/tax.py": (
                "RATES = {'de': 0.19, 'fr': 0.2}\n\n\ndef vat_rate(country):\n    return RATES[country]\n"
            ),
            "shop/parser.py": "".join(
                f"def parse_{i}(text):\n    return text.split({i!r})\n\n\n" for i in range(60)
            ),
            "web/app.js": "export function renderCart(cart) {\n  return cart.items.map((i) => i.name);\n}\n",
            ".env": "API_KEY=abc\n",
            "deploy/key.pem": "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n",
            "config/settings.py": "OPENAI_KEY = 'sk-" + "a" * 40 + "'\n",
            "assets/logo.png": "not really a png",
            "package-lock.json": "{}\n",
        },
    )
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    return repo


def test_pack_ranks_the_task_code_first_and_fits(tmp_path):
    repo = service_repo(tmp_path)
    packed = build_pack("invoice_total is wrong when the VAT rate changes", repo, SETTINGS, budget=600)
    data = packed.as_dict()
    assert data["tokens"] == count(packed.text) <= 600
    files = {f["path"]: f for f in data["files"]}
    assert files["shop/billing.py"]["level"] in ("partial", "full")
    kept = {c["name"]: c["level"] for c in files["shop/billing.py"]["chunks"]}
    assert kept["invoice_total"] in ("full", "stripped")
    assert "vat_rate" in packed.text
    assert [f["path"] for f in data["files"] if f["section"] == "core"] == ["AGENTS.md", "README.md"]


def test_secrets_and_binaries_are_never_packed(tmp_path):
    repo = service_repo(tmp_path)
    packed = build_pack("API key settings private key", repo, SETTINGS, budget=20_000)
    data = packed.as_dict()
    assert data["secrets_excluded"] == 3
    assert data["excluded"] == {"binary": 1}  # the lock file is indexed, ranked last
    paths = {f["path"] for f in data["files"]}
    assert not paths & {".env", "deploy/key.pem", "config/settings.py", "assets/logo.png"}
    assert "sk-aaaa" not in packed.text and "PRIVATE KEY" not in packed.text


def test_reindex_parses_only_changed_files(tmp_path):
    repo = service_repo(tmp_path)
    assert build(repo).parsed == 8  # the 7 indexed and the one found secret by its content
    assert build(repo).parsed == 0
    (repo / "shop/tax.py").write_text("def vat_rate(country):\n    return 0.2\n")
    (repo / "README.md").touch()  # same content, new mtime: hashed, not parsed
    index = build(repo)
    assert index.parsed == 1
    assert build(repo).parsed == 0
    (repo / "shop/new.py").write_text("def fresh():\n    pass\n")
    index = build(repo)
    assert index.parsed == 1 and "shop/new.py" in {f.path for f in index.files}


def test_the_stable_prefix_does_not_depend_on_the_task(tmp_path):
    repo = service_repo(tmp_path)
    one = build_pack("invoice totals", repo, SETTINGS, budget=2_000)
    two = build_pack("parse the text", repo, SETTINGS, budget=2_000)
    assert one.blocks[0] == two.blocks[0] and one.blocks[1] == two.blocks[1]
    assert one.blocks[2] != two.blocks[2]
    blocks = one.as_dict()["blocks"]
    assert ["cache_control" in b for b in blocks] == [*[True] * (len(blocks) - 1), False]


def test_model_window_and_split(tmp_path):
    repo = service_repo(tmp_path)
    packed = build_pack("invoice", repo, SETTINGS, model="gpt-4")
    assert packed.budget.total == int(8_192 * 0.8) and packed.budget.encoding == "cl100k_base"
    assert packed.budget.core == int(8_192 * 0.8 * 0.25) and packed.budget.buffer == 8_192 - int(8_192 * 0.8)


def test_cli_json_shape(tmp_path):
    repo = service_repo(tmp_path)
    argv = ["context", "pack", "invoice total", "--repo", str(repo), "--budget", "800", "--format", "json"]
    proc = subprocess.run(
        [sys.executable, "-m", "xvckit", *argv],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(proc.stdout)
    assert {"budget", "tokens", "sections", "files", "excluded", "secrets_excluded", "blocks"} <= data.keys()
    assert data["budget"] == 800 and data["tokens"] <= 800
    assert set(data["sections"]) == {"core", "working"}
    for entry in data["files"]:
        assert {"path", "level", "tokens", "score", "chunks"} <= entry.keys()
        assert entry["level"] in ("full", "partial", "signatures", "outline", "path")
        for chunk in entry["chunks"]:
            assert set(chunk) == {"name", "lines", "level", "tokens"}
    proc = subprocess.run(
        [sys.executable, "-m", "xvckit", "context", "stats", "--repo", str(repo), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    tree = json.loads(proc.stdout)["tree"]
    assert tree["files"] == 7 and [c["tokens"] for c in tree["children"]] == sorted(
        (c["tokens"] for c in tree["children"]), reverse=True
    )


_NAMES = st.text("abcdefgh_", min_size=1, max_size=8)
_PY = st.builds(
    lambda names, bodies: "".join(
        f"def {n}(x):\n    '''{b}'''\n    return x\n\n\n" for n, b in zip(names, bodies, strict=False)
    ),
    st.lists(_NAMES, min_size=1, max_size=20),
    st.lists(st.text(min_size=0, max_size=200), min_size=20, max_size=20),
)
_MD = st.lists(st.text(min_size=0, max_size=300), max_size=5).map(
    lambda parts: "# T\n" + "\n## S\n".join(parts)
)
_REPOS = st.dictionaries(
    st.sampled_from(["a.py", "b/c.py", "README.md", "docs/d.md", "notes.txt", "e/f.py", "g.js"]),
    st.one_of(_PY, _MD, st.text(max_size=2000)),
    min_size=1,
    max_size=7,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=_REPOS,
    budget=st.integers(1, 3_000),
    task=st.text(max_size=40).filter(str.strip),
    fmt=st.sampled_from(["markdown", "xml"]),
)
def test_tokens_never_exceed_the_budget(files, budget, task, fmt):
    """A pack within the budget, or an error that names a budget which holds one (if any does)."""
    with tempfile.TemporaryDirectory() as root:
        repo = write(Path(root), files)
        try:
            packed = build_pack(task, repo, SETTINGS, budget=budget, fmt=fmt)
        except UserError as exc:
            suggested = re.search(r"is too small for anything in .*; try --budget (\d+)$", str(exc))
            if suggested is None:  # no budget holds anything: no text, or only empty core files
                assert all(f.parse.tokens == 0 for f in build(repo).files), exc
                return
            budget = int(suggested[1])
            packed = build_pack(task, repo, SETTINGS, budget=budget, fmt=fmt)
        assert 0 < count(packed.text) <= budget
        assert packed.as_dict()["tokens"] <= budget


def test_an_empty_task_is_an_error(tmp_path):
    repo = service_repo(tmp_path)
    for task in ("", " \n\t"):
        with pytest.raises(UserError, match=r"^the task is empty"):
            build_pack(task, repo, SETTINGS, budget=2_000)


def test_a_budget_too_small_for_anything_is_an_error_naming_one_that_is_not(tmp_path):
    repo = service_repo(tmp_path)
    with pytest.raises(
        UserError, match=r"^a budget of 3 tokens is too small for anything in .*; try --budget (\d+)$"
    ) as caught:
        build_pack("invoice total", repo, SETTINGS, budget=3)
    suggested = int(re.search(r"(\d+)$", str(caught.value))[1])
    assert build_pack("invoice total", repo, SETTINGS, budget=suggested).text
    with pytest.raises(UserError, match="--budget 0: must be more than 0"):
        build_pack("invoice total", repo, SETTINGS, budget=0)


@pytest.mark.parametrize("argv", [["", "--budget", "800"], ["invoice total", "--budget", "3"]])
def test_cli_empty_pack_is_a_one_line_error(tmp_path, argv):
    repo = service_repo(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "xvckit", "context", "pack", *argv, "--repo", str(repo)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("xvckit: ") and proc.stderr.count("\n") == 1
