"""``truyvet demo`` (what ``make demo`` runs), small, against the test stack: it ends with the summary
and a dashboard URL with a ready token, and that URL works in Chromium (graph and contacts shown)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from truyvet.cli import cli


def test_demo_ends_with_a_dashboard_url_that_works(services, page: Any, artifacts: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--no-start", "--residents", "500", "--days", "1",
                                      "--venue-share", "0.02", "--seed", "7"])
    out = result.output
    (artifacts / "demo-output.txt").write_text(out, encoding="utf-8")
    assert result.exit_code == 0, out + repr(result.exception)
    assert "roster of 2428 establishments" in out and "by venue devices reading CCCD cards" in out
    counts = re.search(r"case (case_\w+) \(person \S+, \d+ visits\): (\d+) F1 and (\d+) F2 contacts", out)
    assert counts, out
    case_id, f1, f2 = counts.group(1), int(counts.group(2)), int(counts.group(3))
    assert f1 > 0
    assert "alerts per ward:" in out
    report = re.search(r"coverage report: (\S+\.csv)", out)
    csv_bytes = Path(report.group(1)).read_bytes() if report else b""
    # Staff open it in Excel: a UTF-8 BOM and Vietnamese headers (issue 14).
    assert csv_bytes.startswith("\ufeffNgày,Mã phường/xã,Phường/xã".encode()), csv_bytes[:80]
    assert "Phường Đức Xuân" in out  # the coverage table, with its diacritics
    url = re.search(r"this case: (http://\S+/dashboard/case\?case=" + case_id + r"#token=tv_\S+)", out)
    assert url, out

    page.goto(url.group(1))
    page.wait_for_selector("#graph-svg")
    assert page.inner_text("#count-f1") == str(f1) and page.inner_text("#count-f2") == str(f2)
    assert page.locator("#graph-svg .node.f1").count() == min(f1, 40)
    assert page.locator("#contacts tbody tr").count() == f1 + f2
    page.screenshot(path=str(artifacts / "demo-dashboard-case.png"), full_page=False)
    assert not page.errors and not page.outside
