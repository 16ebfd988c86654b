"""A review document (review.document) as Markdown for a pull request's comment, as JSON, or as
SARIF 2.1.0 for code-scanning annotations.

What a model wrote is text from outside: in Markdown it is kept to one line, HTML in it is
escaped and `@` mentions are broken (a comment must not ping people or inject markup); in
SARIF it is a plain-text message. SARIF locations are URIs relative to the repository's root,
percent-encoded; a finding about a whole file has a location without a region.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import orjson

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
TOOL_NAME = "xvckit-review"
_MENTION = re.compile(r"@(?=\w)")


def render(document: dict, fmt: str) -> str:
    if fmt == "markdown":
        return markdown(document)
    if fmt == "sarif":
        return _json(sarif(document))
    return _json(document)


def summary(document: dict) -> str:
    """One line: findings by severity, files, what went wrong."""
    counts = document["counts"]
    total = document["total"]
    files = document["files"]
    line = f"{total} finding{'' if total == 1 else 's'}"
    if total:
        line += " (" + ", ".join(f"{n} {s}{'' if n == 1 else 's'}" for s, n in counts.items() if n) + ")"
    line += f" in {files['reviewed']} of {files['changed']} changed files"
    if files["not_reviewed"]:
        line += f"; {len(files['not_reviewed'])} not reviewed"
    if document["omitted"]:
        line += f"; {document['omitted']} over max_findings not shown"
    return line


def markdown(document: dict) -> str:
    base = document["base"]
    against = f"base {_code(base['ref'])} ({_code(base['commit'][:12])})"
    out = ["## xvckit review", "", f"{summary(document)} · {against} · {_inline(document['model'])}", ""]
    by_file: dict[str, list[dict]] = {}
    for finding in document["findings"]:
        by_file.setdefault(finding["file"], []).append(finding)
    for path, findings in by_file.items():
        out.append(f"### {_code(path)}")
        out.append("")
        for f in findings:
            if f["line"] is not None:
                where = f"line {f['line']}"
            elif f["reported_line"] is not None:
                where = f"file (line {f['reported_line']} is outside the change)"
            else:
                where = "file"
            out.append(f"- **{f['severity']}** · {where} · {_inline(f['category'])}: {_inline(f['reason'])}")
            if f["suggestion"]:
                out.append(f"  - Suggestion: {_inline(f['suggestion'])}")
        out.append("")
    if document["omitted"]:
        out += [f"_{document['omitted']} more not shown (max_findings: {document['max_findings']})._", ""]
    files = document["files"]
    if files["not_reviewed"]:
        out += ["**Not reviewed:**", ""]
        out += [f"- {_code(n['file'])}: {_inline(n['error'])}" for n in files["not_reviewed"]]
        out.append("")
    if files["skipped"]:
        skipped = ", ".join(f"{_code(s['file'])} ({_inline(s['reason'])})" for s in files["skipped"])
        out += [f"Not sent: {skipped}.", ""]
    return "\n".join(out)


def sarif(document: dict) -> dict:
    categories = sorted({f["category"] for f in document["findings"]})
    rule_index = {name: i for i, name in enumerate(categories)}
    results = [_result(f, rule_index) for f in document["findings"]]
    files = document["files"]
    notifications = [
        _notification("error", f"not reviewed: {n['error']}", n["file"]) for n in files["not_reviewed"]
    ] + [_notification("note", f"not sent: {s['reason']}", s["file"]) for s in files["skipped"]]
    invocation: dict = {"executionSuccessful": not files["not_reviewed"]}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": document["tool"]["version"],
                        "rules": [
                            {
                                "id": name,
                                "name": name,
                                "shortDescription": {"text": f"Review finding: {name}"},
                            }
                            for name in categories
                        ],
                    }
                },
                "results": results,
                "invocations": [invocation],
                "properties": {
                    "model": document["model"],
                    "base": document["base"],
                    "head": document["head"],
                    "omitted": document["omitted"],
                },
            }
        ],
    }


def _result(finding: dict, rule_index: dict[str, int]) -> dict:
    text = finding["reason"]
    if finding["suggestion"]:
        text += f"\n\nSuggestion: {finding['suggestion']}"
    physical: dict = {"artifactLocation": {"uri": _uri(finding["file"])}}
    if finding["line"] is not None:
        physical["region"] = {"startLine": finding["line"]}
    result = {
        "ruleId": finding["category"],
        "ruleIndex": rule_index[finding["category"]],
        "level": finding["severity"],  # error, warning, note: SARIF's own levels
        "message": {"text": text},
        "locations": [{"physicalLocation": physical}],
    }
    if finding["reported_line"] is not None:
        result["properties"] = {"reportedLine": finding["reported_line"]}
    return result


def _notification(level: str, text: str, path: str) -> dict:
    return {
        "level": level,
        "message": {"text": text},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(path)}}}],
    }


def _uri(path: str) -> str:
    """A repository path as a relative URI reference (`src/my file.py` -> `src/my%20file.py`)."""
    return quote(path, safe="/")


def _inline(text: str) -> str:
    """Model text for one Markdown line: whitespace collapsed, HTML escaped, mentions broken."""
    return _MENTION.sub("@\u200b", html.escape(" ".join(str(text).split()), quote=False))


def _code(path: str) -> str:
    """A path as inline code, with a fence longer than any backtick run in it."""
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", path)), default=0) + 1)
    pad = " " if path.startswith("`") or path.endswith("`") else ""
    return f"{ticks}{pad}{path}{pad}{ticks}"


def _json(data: dict) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"
