"""What operators and recipients read after a round, on the sample's real rounds: the step lines of
`dtsen run-round` and the main job (what was done now, what an earlier run had done, what a dry run
would change), the round's and the version's summaries (submission outcomes with reason codes, the
audit's integrity warnings), and the Indonesian emails (numbers and times written the Indonesian way,
the report's location as the recipient finds it)."""

from __future__ import annotations

import datetime as dt
import email
import json
import re
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dtsen.cli import print_round
from dtsen.config import settings
from dtsen.notify.messages import region_emails
from dtsen.notify.subscribers import parse_subscribers
from dtsen.paths import SAMPLE_DIR
from dtsen.report import format_round, format_steps, format_version, round_report
from dtsen.round import NOTIFY_PROGRAMS, RoundContext
from tests.factories import run_steps

LANDING = SAMPLE_DIR / "landing"
BULAN = ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
         "November", "Desember"]  # fmt: skip


@pytest.fixture(scope="module")
def rounds(module_warehouse, tmp_path_factory):
    """Q1 and Q2 run (each version announced to program owners), then run again; a dry run of Q2
    (merged already) and of Q3 (not yet merged). Mail goes to the module's own outbox."""
    conn = module_warehouse
    work = tmp_path_factory.mktemp("output")
    publish, outbox = work / "publish", work / "outbox"
    runs: dict = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_OUTBOX", str(outbox))
        for round_id in ("2026-Q1", "2026-Q2"):
            first = run_steps(round_id, landing_root=LANDING, publish_root=publish)
            ctx = RoundContext.create(round_id, landing_root=LANDING, publish_root=publish)
            first["notify_programs"] = NOTIFY_PROGRAMS.run(
                RoundContext.create(round_id, publish_root=publish, version=first["publish"]["version"])
            )
            again = run_steps(round_id, landing_root=LANDING, publish_root=publish)
            again["notify_programs"] = NOTIFY_PROGRAMS.run(
                RoundContext.create(round_id, publish_root=publish, version=again["publish"]["version"])
            )
            runs[round_id] = {"first": first, "again": again, "ctx": ctx}
        runs["dry merged"] = run_steps("2026-Q2", landing_root=LANDING, publish_root=publish, dry_run=True)
        runs["dry"] = run_steps("2026-Q3", landing_root=LANDING, publish_root=publish, dry_run=True)
        runs["dry ctx"] = RoundContext.create(
            "2026-Q3", landing_root=LANDING, publish_root=publish, dry_run=True
        )
    conn.commit()
    return {"conn": conn, "publish": publish, "outbox": outbox, "runs": runs}


def _mail(outbox: Path, subject_part: str, to: str) -> email.message.EmailMessage:
    found = []
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if subject_part in message["Subject"] and message["To"] == to:
            found.append(message)
    assert len(found) == 1, (subject_part, to, len(found))
    return found[0]


def test_the_version_summary_names_each_integrity_warning_of_its_audit_with_its_meaning_and_counts(rounds):
    conn = rounds["conn"]
    integrity = conn.execute("SELECT audit -> 'integrity' FROM publish.version WHERE version = 1").fetchone()[
        0
    ]
    met = {rule: e for rule, e in integrity["implausible"].items() if e["families"]}
    assert met, "the sample's first version meets no implausible-recipient rule: nothing to show"
    lines = format_version(conn, 1)
    audit_line = next(line for line in lines if line.strip().startswith("audit:"))
    assert f"with {len(met)} integrity warnings" in audit_line
    for rule, entry in met.items():
        per_regency = ", ".join(f"{k}={n}" for k, n in sorted(entry["per_kabupaten"].items()))
        assert any(
            f"{entry['families']} families meet rule {rule} ({entry['description']})" in line
            and per_regency in line
            and "ground check" in line
            for line in lines
        ), (rule, lines)


def test_the_round_summary_says_how_many_submissions_were_merged_and_rejected_and_why(rounds):
    conn, publish = rounds["conn"], rounds["publish"]
    rows = conn.execute(
        "SELECT s.submission_id, s.status, s.reason_code FROM ingest.submission s "
        "JOIN ingest.round r USING (round_seq) WHERE r.round_id = '2026-Q2' ORDER BY s.submission_id"
    ).fetchall()
    rejected = [(sid, code) for sid, status, code in rows if status == "REJECTED"]
    merged = [sid for sid, status, _ in rows if status == "MERGED"]
    assert rejected and merged, rows
    line = next(
        line for line in format_round(round_report(conn, "2026-Q2", publish)) if "submissions:" in line
    )
    assert line.strip().startswith(f"{len(rows)} submissions: {len(merged)} validated and merged")
    codes = sorted({code for _, code in rejected})
    assert f"{len(rejected)} REJECTED as a whole (" in line
    for code in codes:
        assert f"{code}: {', '.join(sid for sid, c in rejected if c == code)}" in line


def test_a_dry_run_says_in_words_what_the_merge_would_change(rounds, capsys):
    runs = rounds["runs"]
    changes = runs["dry"]["rank_and_audit"]["changes"]
    assert any(changes.values())
    print_round(runs["dry ctx"], runs["dry"])
    out = capsys.readouterr().out
    assert "the merge would change: " + ", ".join(f"{k} {v}" for k, v in changes.items() if v) in out
    assert "{" not in out
    assert "dry run: version" in out and "rolled back; the registry is unchanged" in out


def test_a_dry_run_of_a_merged_round_says_the_merge_would_change_nothing(rounds):
    lines = format_steps(rounds["runs"]["dry merged"])
    assert any(
        "the merge would change nothing: the round was merged by an earlier run" in line for line in lines
    )
    assert not any("{}" in line for line in lines)


def test_a_rerun_says_every_step_had_been_done_by_an_earlier_run(rounds):
    conn = rounds["conn"]
    run = rounds["runs"]["2026-Q2"]
    regions = conn.execute(
        "SELECT count(*) FROM publish.notification WHERE topic LIKE 'round:2026-Q2:region:%'"
    ).fetchone()[0]
    programs = conn.execute(
        "SELECT count(*) FROM publish.notification WHERE topic LIKE %s",
        (f"version:{run['first']['publish']['version']}:program:%",),
    ).fetchone()[0]
    assert regions and programs
    first, again = "\n".join(format_steps(run["first"])), "\n".join(format_steps(run["again"]))
    assert "nothing new" not in first and "by an earlier run" not in first
    assert f"{regions} region emails sent now" in first
    assert "nothing new: an earlier run had done every step" in again
    for said in (
        "round already PUBLISHED (registered by an earlier run)",
        "already loaded",
        f"{len(run['first']['stage_and_validate'])} already processed by an earlier run (not staged again)",
        "already validated by an earlier run",
        "already merged by an earlier run: nothing changed now",
        f"{regions} region emails sent by an earlier run",
        "was built and audited by an earlier run",
        f"version {run['first']['publish']['version']} was already published by an earlier run: nothing rewritten",
        f"{programs} notices of version {run['first']['publish']['version']} to program owners sent by an earlier run",
    ):
        assert said in again, (said, again)


def test_the_round_command_prints_the_steps_then_the_round(rounds, capsys):
    run = rounds["runs"]["2026-Q2"]
    assert print_round(run["ctx"], run["again"]) == 0
    out = capsys.readouterr().out
    assert (
        out.index("this run's steps:") < out.index("round 2026-Q2 (PUBLISHED)") < out.index("audit: passed")
    )


def test_region_emails_write_counts_the_indonesian_way_and_point_to_the_report_as_the_region_gets_it(rounds):
    publish, outbox = rounds["publish"], rounds["outbox"]
    summary = json.loads((publish / "feedback" / "2026-Q1" / "6213-2026Q1-01" / "ringkasan.json").read_text())
    received = summary["rows"]["anggota.csv"]["received"]
    assert received >= 1000
    body = _mail(outbox, "Hasil kiriman putaran 2026-Q1", "dinsos.6213@pemda.example").get_content()
    assert f"diterima {received // 1000}.{received % 1000:03d}," in body
    assert "feedback/2026-Q1/6213-2026Q1-01/ditolak.csv" in body
    assert str(publish) not in body


def test_region_emails_link_the_report_under_the_configured_feedback_share(rounds):
    publish = rounds["publish"]
    document = json.loads(settings().subscribers_path.read_text(encoding="utf-8"))
    shared = parse_subscribers(document | {"feedback_base_url": "https://berkas.dtsen.example/umpan-balik/"})
    folder = publish / "feedback" / "2026-Q1" / "6213-2026Q1-01"
    items = [{"source": "pemda", "kode_wilayah": "6213", "path": str(folder)}]
    ((_, message),) = region_emails("2026-Q1", items, shared)
    assert "https://berkas.dtsen.example/umpan-balik/2026-Q1/6213-2026Q1-01/ditolak.csv" in message.body
    assert str(publish) not in message.body


def test_program_emails_write_counts_and_the_publication_time_the_indonesian_way(rounds):
    publish, outbox = rounds["publish"], rounds["outbox"]
    manifest = json.loads((publish / "versions" / "1" / "manifest.json").read_text())
    recipients = manifest["programs"]["pbi_jk"]["recipients"]
    assert recipients >= 1000
    written = f"{recipients // 1000}.{recipients % 1000:03d}"
    message = _mail(outbox, "Versi 1 terbit: pbi_jk", "pbi-jk@bpjs-kesehatan.example")
    body = message.get_content()
    assert f"pbi_jk {written} penerima" in message["Subject"]
    assert re.search(rf"^  penerima +{re.escape(written)}$", body, re.MULTILINE), body
    wib = dt.datetime.fromisoformat(manifest["published_at"]).astimezone(ZoneInfo("Asia/Jakarta"))
    assert f"{wib.day} {BULAN[wib.month - 1]} {wib.year} pukul {wib:%H.%M} WIB" in body
    assert manifest["published_at"] not in body
    assert "versions/1/" in body and str(publish) not in body
