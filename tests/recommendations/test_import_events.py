"""manage.py import_events on good and broken JSON Lines and CSV files."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from recommendations.models import RawEvent

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_events", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def event_line(user: str = "u1", event_type: str = "view") -> str:
    return json.dumps({"type": event_type, "userId": user, "itemId": "dest-1", "ts": "2026-01-01T08:00:00Z"})


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_a_good_jsonl_file_is_imported_in_chunks_with_a_summary(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", [event_line(f"u{n}") for n in range(25)])
    out, err = run(str(path), "--chunk-size", "10")
    assert RawEvent.objects.count() == 25
    assert "read 25 lines, inserted 25 events, 0 already stored (not written again), rejected 0" in out
    assert err == ""  # no progress bar without a terminal
    assert not (tmp_path / "events.jsonl.rejects.jsonl").exists()


def test_on_a_terminal_progress_shows_lines_done_of_the_total_and_the_rate(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", [event_line(f"u{n}") for n in range(25)])
    terminal = Terminal()
    call_command("import_events", str(path), "--chunk-size", "10", stdout=StringIO(), stderr=terminal)
    bar = terminal.getvalue()
    assert "import events.jsonl" in bar and "25/25" in bar and "lines/s" in bar


def test_importing_the_same_file_again_writes_nothing_and_says_so(tmp_path: Path) -> None:
    lines = [event_line(f"u{n % 7}") for n in range(40)]  # identical events on different lines are distinct
    path = write_jsonl(tmp_path / "events.jsonl", lines)
    first, _ = run(str(path), "--json", "--chunk-size", "16")
    assert (json.loads(first)["inserted"], json.loads(first)["duplicates"]) == (40, 0)
    again, _ = run(str(path), "--json")
    assert (json.loads(again)["inserted"], json.loads(again)["duplicates"]) == (0, 40)
    text, _ = run(str(path))
    assert "inserted 0 events, 40 already stored (not written again)" in text
    longer = write_jsonl(tmp_path / "events.jsonl", [*lines, event_line("u-new"), event_line("u-newer")])
    grown, _ = run(str(longer), "--json")
    assert (json.loads(grown)["inserted"], json.loads(grown)["duplicates"]) == (2, 40)
    assert RawEvent.objects.count() == 42


def test_an_event_id_from_the_client_makes_overlapping_files_store_each_event_once(tmp_path: Path) -> None:
    def line(event_id: str) -> str:
        return json.dumps({"eventId": event_id, **json.loads(event_line(event_id))})

    run(str(write_jsonl(tmp_path / "monday.jsonl", [line("e1"), line("e2"), line("e3")])))
    out, _ = run(str(write_jsonl(tmp_path / "tuesday.jsonl", [line("e3"), line("e2"), line("e4")])), "--json")
    assert (json.loads(out)["inserted"], json.loads(out)["duplicates"]) == (1, 2)
    assert sorted(RawEvent.objects.values_list("event_id", flat=True)) == ["e1", "e2", "e3", "e4"]


def test_one_percent_of_bad_lines_costs_no_good_line_and_each_is_listed_in_the_rejects_file(tmp_path: Path) -> None:
    lines = [event_line(f"u{n}") if n % 100 != 42 else "{broken" for n in range(1000)]
    path = write_jsonl(tmp_path / "events.jsonl", lines)
    with pytest.raises(CommandError, match="10 line\\(s\\) rejected, each listed in .*events.jsonl.rejects.jsonl"):
        run(str(path), "--chunk-size", "128")
    assert RawEvent.objects.count() == 990
    rejects = [json.loads(row) for row in (tmp_path / "events.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [reject["line"] for reject in rejects] == [n + 1 for n in range(1000) if n % 100 == 42]
    assert all(reject["errors"]["line"].startswith("not valid JSON") for reject in rejects)


def test_a_good_csv_file_is_imported_with_payloads(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "type,userId,itemId,ts,payload\n"
        'view,u1,dest-1,2026-01-01T08:00:00Z,"{""screen"": ""home""}"\n'
        "book,u1,dest-1,2026-01-01T08:05:00Z,\n"
    )
    run(str(path))
    events = list(RawEvent.objects.order_by("ts"))
    assert [(e.type, e.payload) for e in events] == [("view", {"screen": "home"}), ("book", {})]


def test_broken_lines_are_reported_by_number_and_the_rest_is_stored(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "events.jsonl",
        [event_line("u1"), "{not json", event_line("u2", event_type="like"), "", event_line("u3")],
    )
    with pytest.raises(CommandError, match="2 line\\(s\\) rejected, each listed in .*; the valid lines were stored"):
        out, err = run(str(path))
    assert RawEvent.objects.count() == 2


def test_rejections_name_the_line_and_field_without_a_traceback(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", [event_line("u1"), "{not json", event_line("u2", event_type="like")])
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_events", str(path), stdout=StringIO(), stderr=err)
    report = err.getvalue()
    assert "line 2: line: not valid JSON" in report
    assert "line 3: type: must be one of" in report
    assert "Traceback" not in report


def test_a_csv_with_a_bad_payload_is_reported_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("type,userId,itemId,ts,payload\nview,u1,dest-1,2026-01-01T08:00:00Z,{oops\n")
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_events", str(path), stdout=StringIO(), stderr=err)
    assert "line 2: line: payload is not valid JSON" in err.getvalue()


def test_a_csv_with_a_wrong_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("kind,user\nview,u1\n")
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_events", str(path), stdout=StringIO(), stderr=err)
    assert "header must name columns" in err.getvalue()
    assert RawEvent.objects.count() == 0


def test_dry_run_validates_without_storing(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", [event_line("u1"), event_line("u2")])
    out, _ = run(str(path), "--dry-run", "--json")
    assert json.loads(out)["inserted"] == 2
    assert json.loads(out)["dryRun"] is True
    assert RawEvent.objects.count() == 0


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No such file"):
        run(str(tmp_path / "absent.jsonl"))
