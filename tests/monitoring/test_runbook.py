"""Every runbook link resolves to a section of RUNBOOK.md, and the commands the runbook gives match the code."""

import re
import shlex
from urllib.parse import urlparse

import pytest
from django.core.management import get_commands, load_command_class
from django.urls import Resolver404, resolve

from common import auth
from tests.monitoring.prometheus_server import RUNBOOK_FILE, alert_rules, dashboard_panels

SECTION_PARTS = ("**Means**", "**Look**", "**Act**", "**Confirm**")


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(markdown: str) -> list[tuple[int, str]]:
    """(level, text) of every heading outside fenced code blocks."""
    found: list[tuple[int, str]] = []
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"^(#{1,6})\s+(.+?)\s*#*$", line)):
            found.append((len(match.group(1)), match.group(2)))
    return found


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for _, text in headings(markdown):
        anchor = github_anchor(text)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        result.add(anchor if count == 0 else f"{anchor}-{count}")
    return result


def sections(markdown: str) -> dict[str, str]:
    """The text under each level-2 heading, by heading."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_anchors_follow_githubs_rules() -> None:
    assert github_anchor("RideEaseServiceDown") == "rideeaseservicedown"
    assert github_anchor("Where to look") == "where-to-look"
    assert github_anchor("What `train` does: step 1") == "what-train-does-step-1"
    assert anchors("## A\ntext\n```bash\n# not a heading\n```\n## A\n") == {"a", "a-1"}


def test_every_runbook_url_resolves_to_a_heading() -> None:
    available = anchors(RUNBOOK_FILE.read_text())
    for name, rule in alert_rules().items():
        url = urlparse(rule["annotations"]["runbook_url"])
        assert url.path.endswith("/monitoring/RUNBOOK.md"), f"{name}: {url.geturl()}"
        assert url.fragment in available, f"{name}: #{url.fragment} is not a heading of RUNBOOK.md"


def test_each_alert_has_its_own_section_saying_what_it_means_how_to_look_act_and_confirm() -> None:
    by_heading = sections(RUNBOOK_FILE.read_text())
    for name in alert_rules():
        assert name in by_heading, f"no section for {name}"
        for part in SECTION_PARTS:
            assert part in by_heading[name], f"{name}: no {part}"


def _manage_commands(markdown: str) -> list[list[str]]:
    """The argument lists of every `manage.py ...` the runbook shows, in code spans and code blocks."""
    commands = []
    for snippet in re.findall(r"`([^`\n]*manage\.py [^`\n]*)`", markdown) + re.findall(
        r"^\s*(?:\.venv/bin/python )?manage\.py .*$", markdown, flags=re.MULTILINE
    ):
        words = shlex.split(snippet.split("manage.py", 1)[1], comments=True)
        commands.append(words)
    return commands


def test_every_manage_py_command_in_the_runbook_exists_with_those_options() -> None:
    commands = _manage_commands(RUNBOOK_FILE.read_text())
    assert {words[0] for words in commands} >= {"train", "rollback", "experiment_summary"}
    available = get_commands()
    for name, *arguments in commands:
        assert name in available, f"manage.py {name} does not exist"
        parser = load_command_class(available[name], name).create_parser("manage.py", name)
        try:
            parser.parse_args(arguments)
        except SystemExit:
            pytest.fail(f"manage.py {name} {' '.join(arguments)}: not accepted by the command")


def test_every_url_path_in_the_runbook_is_served() -> None:
    markdown = RUNBOOK_FILE.read_text()
    in_commands = re.findall(r"\$RECO(/[\w/<>.-]*)", markdown)
    in_text = re.findall(r"`(/(?:admin|traces)[\w/<>.-]*)`", markdown)
    paths = set(in_commands) | set(in_text)
    assert {"/admin/serving-history", "/admin/rollback", "/admin/switch-model", "/admin/models"} <= paths
    assert "/traces/<request-id>" in paths and "/admin/ui/" in paths
    for path in paths:
        try:
            resolve(re.sub(r"<[^>]+>", "0123abcd", path))
        except Resolver404:
            pytest.fail(f"{path} in the runbook is not a URL of the service")


def test_the_runbook_names_the_admin_key_header_the_service_checks() -> None:
    markdown = RUNBOOK_FILE.read_text()
    header = auth.HEADER.removeprefix("HTTP_").replace("_", "-").lower()
    used = {name.lower() for name in re.findall(r"-H \"([\w-]+): \$KEY\"", markdown)}
    assert used == {header}


def test_the_dashboard_panels_the_runbook_points_to_exist() -> None:
    mentions = re.findall(r"((?:\*[^*\n]+\*(?: and )?)+) panels?\b", RUNBOOK_FILE.read_text())
    named = {title for mention in mentions for title in re.findall(r"\*([^*\n]+)\*", mention)}
    assert len(named) >= 6
    assert named <= {panel["title"] for panel in dashboard_panels()}, named
