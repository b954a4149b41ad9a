"""Regenerates pages/ and manifest.json from the real handbook pages.

Each version is the real page text with a few substitutions applied; the
version with no substitutions is the real page. Every substitution asserts the
exact number of occurrences, so a change in the corpus fails loudly.
Stdlib only. Run: python3 bench/golden/versions/build_versions.py
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# ../shared/corpus/tts-handbook, relative to the repository root
CORPUS = HERE.parents[2].parent / "shared" / "corpus" / "tts-handbook"
TODAY = "2026-10-15"
HRS = "https://docs.google.com/document/d/15glvq9UakKUN8XTRTa6gRkhBHm2whhQyAGmf8ibTtBs/edit"

# (old, new, expected_count)
DOCS: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "travel-and-leave/advanced-sick-leave.md",
        [
            dict(
                start="2024-02-01",
                subs=[
                    ("up to 240 hours of advanced sick leave", "up to 160 hours of advanced sick leave", 1),
                    (
                        "timesheet report for the current and previous year.",
                        "timesheet report for the current year.",
                        1,
                    ),
                ],
                changes=[],
            ),
            dict(
                start="2025-07-01",
                subs=[],
                changes=[
                    "advanced sick leave cap 160 → 240 hours",
                    "timesheet report must cover the current and previous year (was: current year only)",
                ],
            ),
            dict(
                start="2027-01-01",
                subs=[
                    ("up to 240 hours of advanced sick leave", "up to 280 hours of advanced sick leave", 1),
                    (
                        "Your supervisors should keep signed copies for their records.",
                        "Your supervisors should keep signed copies for their records. Your HR Specialist will confirm receipt of a complete request within 5 business days.",
                        1,
                    ),
                ],
                changes=[
                    "advanced sick leave cap 240 → 280 hours",
                    "new sentence: HR Specialist confirms receipt of a complete request within 5 business days",
                ],
            ),
        ],
    ),
    (
        "travel-and-leave/fmla.md",
        [
            dict(start="2024-01-01", subs=[], changes=[]),
            dict(
                start="2025-10-01",
                subs=[
                    (
                        "Medical documentation to support your request is required.",
                        "Medical documentation to support your request is required and must be submitted within 15 calendar days of your request.",
                        1,
                    ),
                    (
                        ") for next steps and documents.",
                        ") at least 30 days before your planned leave start date (when the leave is foreseeable) for next steps and documents.",
                        1,
                    ),
                ],
                changes=[
                    "medical documentation now due within 15 calendar days of the request (no deadline before)",
                    "contact the HR Specialist at least 30 days before foreseeable leave (no lead time before)",
                ],
            ),
        ],
    ),
    (
        "travel-and-leave/paid-parental-leave.md",
        [
            dict(
                start="2024-04-01",
                subs=[
                    (
                        "Leave Without Pay (LWOP) of less than four weeks",
                        "Leave Without Pay (LWOP) of less than two weeks",
                        1,
                    ),
                    (") for the last 12 months.", ") for the last 6 months.", 1),
                ],
                changes=[],
            ),
            dict(
                start="2025-04-01",
                subs=[],
                changes=[
                    "LWOP that can be requested at any time: less than two weeks → less than four weeks",
                    "timesheet report period for the PPL request: last 6 months → last 12 months",
                ],
            ),
            dict(
                start="2026-06-01",
                subs=[
                    (
                        "Leave Without Pay (LWOP) of less than four weeks",
                        "Leave Without Pay (LWOP) of less than six weeks",
                        1,
                    ),
                    (
                        "1. Send a message (email, text, call, or Slack) to your",
                        "1. Within 5 business days of the birth or placement, send a message (email, text, call, or Slack) to your",
                        1,
                    ),
                ],
                changes=[
                    "LWOP that can be requested at any time: less than four weeks → less than six weeks",
                    "new deadline: notify the HR Specialist within 5 business days of the birth or placement",
                ],
            ),
        ],
    ),
    (
        "travel-and-leave/voluntary-leave-transfer-program.md",
        [
            dict(
                start="2024-06-01",
                subs=[
                    (
                        "negative leave balance of at least 24 hours",
                        "negative leave balance of at least 40 hours",
                        1,
                    ),
                    ("(24 work hours or more)", "(40 work hours or more)", 1),
                    ("(within 10 business days)", "(within 15 business days)", 1),
                ],
                changes=[],
            ),
            dict(
                start="2025-12-01",
                subs=[],
                changes=[
                    "minimum anticipated negative leave balance 40 → 24 hours",
                    "prolonged absence threshold 40 → 24 work hours",
                    "HR decision on VLTP application within 15 → 10 business days",
                ],
            ),
        ],
    ),
    (
        "travel-and-leave/overtime.md",
        [
            dict(start="2024-01-14", subs=[], changes=[]),
            dict(
                start="2025-01-12",
                subs=[
                    ("($191,900 in 2024)", "($195,200 in 2025)", 2),
                    ("$191,900 as of 2024", "$195,200 as of 2025", 1),
                ],
                changes=["maximum salary (overtime/comp time cap) $191,900 (2024) → $195,200 (2025)"],
            ),
            dict(
                start="2026-01-11",
                subs=[
                    ("($191,900 in 2024)", "($197,200 in 2026)", 2),
                    ("$191,900 as of 2024", "$197,200 as of 2026", 1),
                    (
                        "Email your supervisor about the extra hours you plan to work before a religious observance.",
                        "Email your supervisor at least 2 weeks before a religious observance about the extra hours you plan to work.",
                        1,
                    ),
                ],
                changes=[
                    "maximum salary $195,200 (2025) → $197,200 (2026)",
                    "religious comp time: email supervisor at least 2 weeks before the observance (no lead time before)",
                ],
            ),
        ],
    ),
    (
        "travel-and-leave/going-out-of-office.md",
        [
            dict(
                start="2024-09-03",
                subs=[
                    ("at least three business days in advance", "at least two business days in advance", 1),
                    (" This notification is optional if you do not hold a clearance.", "", 1),
                ],
                changes=[],
            ),
            dict(
                start="2025-09-01",
                subs=[],
                changes=[
                    "leave requests: at least two → three business days in advance",
                    "added: international travel notification is optional without a clearance",
                ],
            ),
        ],
    ),
    (
        "travel-and-leave/travel-and-leave-policies/travel-guide-3-travel.md",
        [
            dict(
                start="2024-05-01",
                subs=[
                    ("than 20%.", "than 10%.", 1),
                    ("within 5 business days of getting back", "within 10 business days of getting back", 1),
                    ("more than 5 business days\noutstanding", "more than 10 business days\noutstanding", 1),
                ],
                changes=[],
            ),
            dict(
                start="2025-05-01",
                subs=[],
                changes=[
                    "allowed overrun of the authorized travel budget 10% → 20%",
                    "voucher deadline 10 → 5 business days after returning",
                    "future travel blocked when expenses are more than 10 → 5 business days outstanding",
                ],
            ),
            dict(
                start="2026-11-01",
                subs=[
                    ("any other expenses over $75", "any other expenses over $100", 1),
                    ("at least 4 consecutive nights", "at least 5 consecutive nights", 1),
                ],
                changes=[
                    "receipt threshold for other expenses $75 → $100",
                    "laundry reimbursable from 4 → 5 consecutive nights",
                ],
            ),
        ],
    ),
    (
        "travel-and-leave/travel-and-leave-policies/travel-guide-4-reimbursement.md",
        [
            dict(
                start="2024-02-15",
                subs=[
                    ("will be reviewed in 3-5 business days", "will be reviewed in 5-7 business days", 1),
                    (
                        "travel card 3-5 business days after approval",
                        "travel card 5-7 business days after approval",
                        1,
                    ),
                ],
                changes=[],
            ),
            dict(
                start="2025-10-15",
                subs=[],
                changes=[
                    "voucher review time 5-7 → 3-5 business days",
                    "reimbursement credited 5-7 → 3-5 business days after approval",
                ],
            ),
        ],
    ),
    (
        "travel-and-leave/travel-and-leave-policies/moving.md",
        [
            dict(start="2024-07-01", subs=[], changes=[]),
            dict(
                start="2027-01-03",
                subs=[
                    ("relocating for 120 days or less", "relocating for 90 days or less", 1),
                    ("relocate for longer than 120 days", "relocate for longer than 90 days", 1),
                    ("two times or more per pay", "four times or more per pay", 1),
                ],
                changes=[
                    "short-term relocation without notifying PeopleOps: 120 → 90 days or less",
                    "notify PeopleOps for relocations longer than 120 → 90 days",
                    "Routine Teleworker definition: office two → four times or more per pay period",
                ],
            ),
        ],
    ),
    (
        "general-information-and-resources/purchase-requests.md",
        [
            dict(
                start="2024-01-08",
                subs=[
                    ("services under $10,000", "services under $3,500", 1),
                    ("approval by the TTS Director of Operations", "approval by the TTS Chief of Staff", 1),
                ],
                changes=[],
            ),
            dict(
                start="2025-03-01",
                subs=[],
                changes=[
                    "services micropurchase threshold $3,500 → $10,000",
                    "office supply approver TTS Chief of Staff → TTS Director of Operations",
                ],
            ),
            dict(
                start="2026-12-01",
                subs=[
                    ("services under $10,000", "services under $15,000", 1),
                    ("arrive 7-10 business days after that", "arrive 10-14 business days after that", 1),
                ],
                changes=[
                    "services micropurchase threshold $10,000 → $15,000",
                    "business card delivery 7-10 → 10-14 business days",
                ],
            ),
        ],
    ),
    (
        "hiring-staying-or-changing-jobs/term-extensions.md",
        [
            dict(
                start="2024-03-15",
                subs=[
                    (
                        "1. 6-7 months before an employee's term ends",
                        "1. 4-5 months before an employee's term ends",
                        1,
                    ),
                    ("is 3+3+2.", "is 2+2+2+2.", 1),
                ],
                changes=[],
            ),
            dict(
                start="2025-06-16",
                subs=[],
                changes=[
                    "PeopleOps outreach 4-5 → 6-7 months before term end",
                    "standard breakdown for an 8 year appointment 2+2+2+2 → 3+3+2",
                ],
            ),
        ],
    ),
    (
        "hiring-staying-or-changing-jobs/promotions.md",
        [
            dict(start="2024-10-01", subs=[], changes=[]),
            dict(
                start="2026-04-01",
                subs=[
                    (
                        "within 30 days of an application\u2019s closing date.",
                        "by an application\u2019s closing date.",
                        1,
                    ),
                    (
                        "is posted internally and will be",
                        "is posted internally for at least 10 business days and will be",
                        1,
                    ),
                ],
                changes=[
                    "time-in-grade must be met by the closing date (was: within 30 days of it)",
                    "Excepted Service Merit Promotion postings open at least 10 business days (new)",
                ],
            ),
        ],
    ),
    (
        "hiring-staying-or-changing-jobs/gsa-details.md",
        [
            dict(
                start="2024-08-01",
                subs=[
                    ("information within 3 days.", "information within 5 days.", 1),
                    ("it can take 4-6 weeks", "it can take 6-8 weeks", 2),
                ],
                changes=[],
            ),
            dict(
                start="2025-08-01",
                subs=[],
                changes=[
                    "OHRM review of Opportunity Network form 5 → 3 days",
                    "detail processing with an IAA 6-8 → 4-6 weeks",
                ],
            ),
            dict(
                start="2027-04-01",
                subs=[
                    ("another 120 days (240\ndays total)", "another 60 days (180\ndays total)", 1),
                    ("information within 3 days.", "information within 2 business days.", 1),
                ],
                changes=[
                    "detail extension another 120 days (240 total) → another 60 days (180 total)",
                    "OHRM review 3 days → 2 business days",
                ],
            ),
        ],
    ),
    (
        "hiring-staying-or-changing-jobs/assignee-detail.md",
        [
            dict(
                start="2024-05-20",
                subs=[
                    ("every **Tuesday morning at 1pm ET**", "every **Thursday at 2pm ET**", 1),
                    (
                        "All candidates receive a copy of the interview questions prior to their interview.",
                        "Candidates may request a copy of the interview questions prior to their interview.",
                        1,
                    ),
                ],
                changes=[],
            ),
            dict(
                start="2026-01-01",
                subs=[],
                changes=[
                    "Internal Hiring Review Committee meeting Thursday 2pm ET → Tuesday 1pm ET",
                    "all candidates now receive interview questions in advance (was: on request)",
                ],
            ),
        ],
    ),
    (
        "training-and-development/conferences-events-training.md",
        [
            dict(start="2024-06-15", subs=[], changes=[]),
            dict(
                start="2026-03-01",
                subs=[
                    ("$2,500", "$3,000", 2),
                    ("$2500", "$3000", 2),
                    (
                        "follow up with you\n   within 2 business days.",
                        "follow up with you\n   within 3 business days.",
                        1,
                    ),
                ],
                changes=[
                    "approval-timeline cost threshold $2,500 → $3,000",
                    "Events Team follow-up 2 → 3 business days",
                ],
            ),
        ],
    ),
    (
        "general-information-and-resources/employee-resources-policies/work-schedules.md",
        [
            dict(
                start="2024-02-04",
                subs=[
                    (
                        "You begin working between 7 AM - 10 AM every day.",
                        "You begin working between 7 AM - 9:30 AM every day.",
                        1,
                    ),
                    ("you depart between 3:30 - 6:30 PM", "you depart between 3:30 - 6 PM", 1),
                ],
                changes=[],
            ),
            dict(
                start="2025-05-18",
                subs=[],
                changes=[
                    "gliding start window 7 AM - 9:30 AM → 7 AM - 10 AM",
                    "gliding departure window 3:30 - 6 PM → 3:30 - 6:30 PM",
                ],
            ),
            dict(
                start="2027-02-28",
                subs=[
                    (
                        "The maximum number of hours you can work in a single day is 12.",
                        "The maximum number of hours you can work in a single day is 10.",
                        2,
                    ),
                    (
                        "about your forthcoming schedule, prior to the start of each pay period.",
                        "about your forthcoming schedule at least 5 business days prior to the start of each pay period.",
                        1,
                    ),
                ],
                changes=[
                    "variable day / variable week daily maximum 12 → 10 hours",
                    "changing flexible schedules: tell supervisor at least 5 business days before the pay period (was: before the pay period)",
                ],
            ),
        ],
    ),
    (
        "getting-started/piv.md",
        [
            dict(start="2024-03-01", subs=[], changes=[]),
            dict(
                start="2026-11-16",
                subs=[
                    (
                        "GSA processes new badges every Wednesday.",
                        "GSA processes new badges every Monday and Thursday.",
                        1,
                    ),
                    (
                        "email [hspd12.security@gsa.gov](mailto:hspd12.security@gsa.gov).\n\n## Use with a GSA Mac",
                        "email [hspd12.security@gsa.gov](mailto:hspd12.security@gsa.gov). Badges that are not picked up within 30 days of the ready notice are deactivated.\n\n## Use with a GSA Mac",
                        1,
                    ),
                ],
                changes=[
                    "new badges processed every Wednesday → every Monday and Thursday",
                    "new: badges not picked up within 30 days are deactivated",
                ],
            ),
        ],
    ),
    (
        "tools/zoom.md",
        [
            dict(start="2024-01-01", subs=[], changes=[]),
            dict(
                start="2025-09-01",
                subs=[
                    (
                        "#usertype).\n",
                        "#usertype).\nLicensed user upgrades must be approved by your supervisor.\n\n### Cloud recordings\n\n"
                        "Zoom cloud recordings are automatically deleted 30 days after the meeting. Download any recording you need to keep before then.\n",
                        1,
                    )
                ],
                changes=[
                    "licensed user upgrades now need supervisor approval",
                    "new section: cloud recordings deleted 30 days after the meeting",
                ],
            ),
        ],
    ),
]


def title_of(text: str) -> str:
    m = re.search(r"^title:\s*(.+)$", text, re.M)
    assert m is not None, "every handbook page has a title"
    return m.group(1).strip().strip('"')


def main() -> None:
    docs: list[dict[str, Any]] = []
    for src, versions in DOCS:
        real = (CORPUS / src).read_text(encoding="utf-8")
        d = src[:-3].replace("/", "__")
        out: list[dict[str, Any]] = []
        n_real = 0
        for i, v in enumerate(versions, 1):
            text = real
            for old, new, cnt in v["subs"]:
                got = text.count(old)
                assert got == cnt, (src, i, old, got, cnt)
                text = text.replace(old, new)
            n_real += text == real
            assert title_of(text) == title_of(real)
            rel = f"pages/{d}/v{i}.md"
            (HERE / "pages" / d).mkdir(parents=True, exist_ok=True)
            (HERE / rel).write_text(text, encoding="utf-8")
            if i < len(versions):
                nxt = dt.date.fromisoformat(versions[i]["start"])
                until = (nxt - dt.timedelta(days=1)).isoformat()
            else:
                until = None
            out.append(
                {
                    "version": i,
                    "file": rel,
                    "effective_from": v["start"],
                    "effective_until": until,
                    "changes": v["changes"],
                    "is_original_text": text == real,
                }
            )
        assert n_real == 1, src
        docs.append({"source": src, "title": title_of(real), "versions": out})
    manifest = json.dumps({"today": TODAY, "documents": docs}, ensure_ascii=False, indent=2)
    (HERE / "manifest.json").write_text(manifest + "\n", encoding="utf-8")
    print(len(docs), "documents,", sum(len(d["versions"]) for d in docs), "versions")


if __name__ == "__main__":
    main()
