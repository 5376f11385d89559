"""`switchboard bench`: the data-plane harness through the real binary. A short run of
both modes against our media engine, rtpengine (started by the harness, pinned, NG) and
the loopback floor: every packet comes back, in the right codec, and the report, the CSV
and the SVG chart are written. Figures are not judged (no timing assertions)."""

from __future__ import annotations

import csv
import subprocess
import xml.etree.ElementTree as ET

from conftest import BINARY

SVG = "{http://www.w3.org/2000/svg}"


def test_bench_runs_both_engines_and_writes_the_report(tmp_path):
    out = tmp_path / "bench"
    result = subprocess.run(
        [str(BINARY), "bench", "--mode", "relay,transcode", "--streams", "4",
         "--duration", "1", "--warmup", "0.5", "--engine-core", "0", "--gen-cores", "1",
         "--peer", "rtpengine", "--peer", "loopback", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]

    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ran = {(row["engine"], row["mode"]) for row in rows}
    # loopback cannot transcode: skipped, and the report says so.
    assert ran == {("switchboard", "relay"), ("rtpengine", "relay"), ("loopback", "relay"),
                   ("switchboard", "transcode"), ("rtpengine", "transcode")}
    for row in rows:
        what = f"{row['engine']} {row['mode']}"
        assert int(row["sent"]) >= 150, what  # 4 streams × 50 packets/s × 1 s
        assert int(row["received"]) == int(row["sent"]), what
        assert int(row["unreadable"]) == 0 and int(row["wrong_codec"]) == 0, what
        assert float(row["latency_p99_us"]) > 0, what
        if row["engine"] != "loopback":
            assert float(row["engine_cpu_s"]) >= 0, what

    report = (out / "report.md").read_text()
    assert "## relay" in report and "## transcode" in report
    assert "### switchboard vs rtpengine, relay" in report
    assert "loopback cannot transcode" in report
    assert report in result.stdout  # the report is also printed

    chart = ET.parse(out / "chart.svg").getroot()
    assert chart.tag == f"{SVG}svg"
    # Loss, p99 and CPU panels: 5 lines each for loss and p99, 4 for CPU (no loopback CPU).
    assert len(chart.findall(f"{SVG}polyline")) == 14
    assert (out / "rtpengine.log").exists()
