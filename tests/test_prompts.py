"""The prompt library: immutable versions, labels that move, strict rendering, files and the store."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from xvckit.errors import Conflict, NotFound, UserError
from xvckit.knowledge import prompts_files, prompts_store
from xvckit.knowledge.prompts import RenderError, new_version, parse_ref, render
from xvckit.store import Store, audit, keys


@pytest.fixture
def store(store_url):
    opened = Store.open(store_url)
    yield opened
    opened.close()


def test_a_moved_label_serves_the_new_version_at_once_and_an_unknown_one_is_not_found(store):
    keys.create_team(store, "platform", keys.Limits(), "test")
    one = new_version(1, "Summarize {{ text }}.", model="gpt-4o-mini", parameters={"temperature": 0})
    v1 = prompts_store.add_version(store, "summarize", one, "test", team="platform", labels=("production",))
    v2 = prompts_store.add_version(
        store, "summarize", new_version(1, "Summarize in {{ n }} words: {{ text }}"), "test"
    )
    assert (v1.version, v2.version) == (1, 2)

    assert prompts_store.resolve(store, "summarize", None).version.version == 1  # bare name: production
    assert prompts_store.resolve(store, "summarize", "latest").version.version == 2
    assert prompts_store.set_label(store, "summarize", "production", "2", "test") == 2
    assert prompts_store.resolve(store, "summarize", "production").version.version == 2
    owned = prompts_store.resolve(store, "summarize", "1")
    assert (owned.version.template, owned.team_id) == (
        "Summarize {{ text }}.",
        keys.get_team(store, "platform").id,
    )

    with pytest.raises(NotFound, match=r"no label 'staging' \(labels: latest, production\)"):
        prompts_store.resolve(store, "summarize", "staging")
    with pytest.raises(NotFound, match="no version 3"):
        prompts_store.resolve(store, "summarize", "3")
    with pytest.raises(NotFound, match="no prompt 'nope'"):
        prompts_store.resolve(store, "nope", None)
    keys.create_team(store, "data", keys.Limits(), "test")
    with pytest.raises(Conflict, match="belongs to another team, not data"):
        prompts_store.add_version(store, "summarize", one, "test", team="data")
    with pytest.raises(UserError, match="'latest' always names the newest"):
        prompts_store.set_label(store, "summarize", "latest", "1", "test")

    actions = [(e.action, e.target) for e in audit.entries(store) if e.action.startswith("prompt.")]
    assert actions == [
        ("prompt.add", "summarize@1"),
        ("prompt.add", "summarize@2"),
        ("prompt.label", "summarize:production"),
    ]
    assert audit.verify(store).ok


def test_rendering_names_what_is_missing_or_unknown_and_stays_in_its_sandbox():
    version = new_version(3, "Dear {{ name }}, about {{ topic }}:")
    assert render("letter", version, {"name": "Ann", "topic": "tests"}) == "Dear Ann, about tests:"
    with pytest.raises(RenderError, match=r"prompt letter@3: missing variable 'topic'$"):
        render("letter", version, {"name": "Ann"})
    with pytest.raises(RenderError, match=r"missing variables 'name', 'topic'"):
        render("letter", version, {})
    with pytest.raises(RenderError, match=r"unknown variable 'nmae' \(it takes 'name', 'topic'\)"):
        render("letter", version, {"name": "Ann", "topic": "x", "nmae": "typo"})
    nested = new_version(1, "{{ user.email }}")
    with pytest.raises(RenderError, match="has no attribute 'email'"):
        render("n", nested, {"user": {"name": "Ann"}})
    unsafe = new_version(1, "{{ x.__class__.__mro__ }}")
    with pytest.raises(RenderError, match="unsafe"):
        render("u", unsafe, {"x": ""})
    with pytest.raises(UserError, match="template line 2: Expected an expression"):
        new_version(1, "fine\n{% if %}")
    with pytest.raises(UserError, match=r"uses 'a', 'b'; declared: 'a'"):
        new_version(1, "{{ a }} {{ b }}", ["a"])


def test_references_are_checked():
    assert parse_ref("review") == ("review", None)
    assert parse_ref("review@staging") == ("review", "staging")
    assert parse_ref("review@12") == ("review", "12")
    for bad in ("Review", "review@", "review@Prod", "../x", "a" * 101):
        with pytest.raises(UserError):
            parse_ref(bad)


def _write(folder, name: str, text: str):
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


REVIEW = """\
    name: review
    owner: platform
    tags: [code]
    labels: {production: 1}
    versions:
      - version: 1
        template: |
          Review this diff:
          {{ diff }}
        model: gpt-4o-mini
        parameters: {temperature: 0.2}
    """


def test_prompt_files_are_checked_with_the_field_named(tmp_path):
    _write(tmp_path, "review", REVIEW)
    [prompt] = prompts_files.load_dir(tmp_path)
    assert (prompt.team, prompt.labels, prompt.versions[0].variables) == (
        "platform",
        {"production": 1},
        ("diff",),
    )

    _write(tmp_path, "bad", "name: bad\nversions:\n  - version: 1\n    templat: x\n")
    with pytest.raises(UserError) as caught:
        prompts_files.load_file(tmp_path / "bad.yaml")
    assert str(caught.value).splitlines() == [
        f"{tmp_path}/bad.yaml: versions[0].template: Field required",
        f"{tmp_path}/bad.yaml: versions[0].templat: Extra inputs are not permitted",
    ]
    _write(tmp_path, "bad", "name: bad\nlabels: {production: 2}\nversions:\n  - {version: 1, template: x}\n")
    with pytest.raises(UserError, match=r"bad\.yaml: labels\.production: no version 2"):
        prompts_files.load_file(tmp_path / "bad.yaml")
    _write(tmp_path, "bad", "name: other\nversions:\n  - {version: 1, template: x}\n")
    with pytest.raises(UserError, match="differs from the file's name 'bad'"):
        prompts_files.load_file(tmp_path / "bad.yaml")


def test_push_adds_new_versions_and_refuses_a_changed_one(store, tmp_path):
    keys.create_team(store, "platform", keys.Limits(), "test")
    path = _write(tmp_path, "review", REVIEW)
    assert prompts_store.push(store, prompts_files.load_file(path), "test")["added"] == [1]
    data = yaml.safe_load(path.read_text())
    data["versions"].append({"version": 2, "template": "Review, briefly: {{ diff }}"})
    data["labels"]["staging"] = 2
    path.write_text(yaml.safe_dump(data))
    assert prompts_store.push(store, prompts_files.load_file(path), "test") == {
        "name": "review",
        "added": [2],
        "labels": {"production": 1, "staging": 2},
    }
    assert prompts_store.resolve(store, "review", "staging").version.template == "Review, briefly: {{ diff }}"

    data["versions"][0]["template"] = "Review: {{ diff }}"  # an old version rewritten in git
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(Conflict, match="version 1 differs from the stored one"):
        prompts_store.push(store, prompts_files.load_file(path), "test")
    assert prompts_store.resolve(store, "review", "1").version.template.startswith("Review this diff:")


def test_cli_add_label_render_show_diff_and_list(cli, tmp_path):
    template = tmp_path / "t.j2"
    template.write_text("Translate into {{ lang }}: {{ text }}")
    assert cli("teams", "create", "platform").exit_code == 0
    result = cli(
        "prompts", "add", "translate", "-t", str(template), "--team", "platform", "--label", "production"
    )
    assert result.exit_code == 0, result.output
    assert "translate@1 added, labelled production" in result.output
    template.write_text("Translate into {{ lang }}, formally: {{ text }}")
    args = ("--model", "gpt-4o", "--param", "temperature=0.1", "--json")
    added = cli("prompts", "add", "translate", "-t", str(template), *args)
    assert json.loads(added.output) == {"name": "translate", "version": 2, "labels": []}

    rendered = cli("prompts", "render", "translate", "--var", "lang=French", "--var", "text=hello")
    assert rendered.output == "Translate into French: hello\n"
    missing = cli("prompts", "render", "translate@latest", "--var", "lang=French")
    assert isinstance(missing.exception, RenderError)
    assert "missing variable 'text'" in str(missing.exception)
    unknown = cli("prompts", "render", "translate@canary", "--var", "lang=x")
    assert isinstance(unknown.exception, NotFound)
    assert "no label 'canary'" in str(unknown.exception)

    assert (
        cli("prompts", "label", "translate", "production", "2").output
        == "translate:production -> version 2\n"
    )
    shown = json.loads(cli("prompts", "show", "translate", "--json").output)
    assert (shown["version"], shown["model"], shown["parameters"]) == (2, "gpt-4o", {"temperature": 0.1})
    assert (shown["team"], shown["labels"]) == ("platform", {"latest": 2, "production": 2})

    changes = cli("prompts", "diff", "translate", "1", "production").output
    assert "-Translate into {{ lang }}: {{ text }}" in changes
    assert "+Translate into {{ lang }}, formally: {{ text }}" in changes
    assert 'model: null -> "gpt-4o"' in changes

    [row] = json.loads(cli("prompts", "list", "--json").output)
    assert (row["name"], row["versions"], row["team"]) == ("translate", 2, "platform")


def test_cli_works_on_files_with_dir(cli, tmp_path):
    folder = tmp_path / "prompts"
    folder.mkdir()
    template = tmp_path / "t.j2"
    template.write_text("Hi {{ who }}\n")
    assert (
        cli(
            "prompts", "add", "greet", "-t", str(template), "--dir", str(folder), "--label", "staging"
        ).exit_code
        == 0
    )
    template.write_text("Hello {{ who }}\n")
    assert cli("prompts", "add", "greet", "-t", str(template), "--dir", str(folder)).exit_code == 0
    assert cli("prompts", "label", "greet", "production", "staging", "--dir", str(folder)).exit_code == 0
    saved = yaml.safe_load((folder / "greet.yaml").read_text())
    assert saved["labels"] == {"staging": 1, "production": 1}
    assert [v["template"] for v in saved["versions"]] == ["Hi {{ who }}\n", "Hello {{ who }}\n"]
    assert "template: |" in (folder / "greet.yaml").read_text()  # reviewable as a block
    rendered = cli("prompts", "render", "greet", "--var", "who=Bo", "--dir", str(folder), "--json")
    assert json.loads(rendered.output)["text"] == "Hi Bo\n"
    pushed = cli("prompts", "push", str(folder), "--json")
    assert json.loads(pushed.output) == [{"name": "greet", "added": [1, 2], "labels": saved["labels"]}]
    assert cli("prompts", "render", "greet@latest", "--var", "who=Bo").output == "Hello Bo\n"
