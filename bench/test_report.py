#!/usr/bin/env python3
"""Checks of report.py: the three client outputs it parses, ratios taken
within a round, the idle-10k figures and the README's generated section.
Run by .ci/run: python3 -m unittest bench/test_report.py"""

import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402

WRK = ("Running 2s test @ http://127.0.0.1:18082/\n"
       "RESULT requests=20000 duration_us=2000000 p50=900 p90=1200 p99=2100 p999=4000 "
       "max=9000 errors=3 bytes=2400000\n")
H2LOAD = """finished in 2.00s, 12595.00 req/s, 444.22KB/s
requests: 25190 total, 25350 started, 25190 done, 25180 succeeded, 10 failed, 0 errored, 0 timeout
status codes: 25175 2xx, 0 3xx, 0 4xx, 5 5xx
                     min         max         mean         sd        +/- sd
time for request:     1.26ms     41.31ms     12.50ms      5.02ms    78.93%
"""


def oha(ok, seconds=2.0, p50=0.0002, p99=0.0009, errors=None):
    return json.dumps({
        "summary": {"total": seconds},
        "latencyPercentiles": {"p50": p50, "p90": p50, "p99": p99, "p99.9": p99},
        "statusCodeDistribution": {"200": ok, "502": 1},
        "errorDistribution": errors or {},
    })


class ParseClient(unittest.TestCase):
    def test_wrk_result_line(self):
        run = report.parse_client(WRK)
        self.assertEqual((run["requests"], run["seconds"], run["p99"], run["errors"]),
                         (20000, 2.0, 2100, 3))

    def test_h2load_counts_only_2xx_and_has_no_percentiles(self):
        run = report.parse_client(H2LOAD)
        self.assertEqual(run["requests"], 25175)      # succeeded less the 5xx
        self.assertEqual(run["errors"], 10 + 5)       # failed + non-2xx
        self.assertEqual(run["seconds"], 2.0)
        self.assertIsNone(run["p50"])

    def test_oha_leaves_out_requests_cut_by_the_deadline(self):
        run = report.parse_client(oha(9999, errors={"aborted due to deadline": 7, "connection reset": 2}))
        self.assertEqual(run["requests"], 9999)
        self.assertEqual(run["errors"], 1 + 2)        # the 502 and the reset, not the deadline
        self.assertEqual((run["p50"], run["p99"]), (200, 900))

    def test_anything_else_is_no_result(self):
        self.assertIsNone(report.parse_client("wrk: connection refused\n"))
        self.assertIsNone(report.parse_client("{not json"))


def wrk_line(requests, p99=2000):
    return (f"RESULT requests={requests} duration_us=1000000 p50=1000 p90=1500 p99={p99} "
            f"p999={p99} max={p99} errors=0 bytes=0\n")


def results_dir(tmp):
    """Two rounds of get (saturating) and idle-10k, written as compare.sh would."""
    d = Path(tmp)
    (d / "raw").mkdir()
    (d / "meta.tsv").write_text("date\t2026-12-06T08:00:00Z\ncommand\tbench/compare.sh --rounds 2\n"
                                "clk_tck\t100\nrounds\t2\nduration_s\t1\n")
    (d / "workloads.tsv").write_text(
        "workload\ttitle\tlistener\tbytes\trates\ttargets\n"
        "get\tkeep-alive GET\tplain\t0\t\tdirect tracehop-on nginx\n"
        "idle-10k\t10000 idle keep-alive connections\tplain\t0\tidle\ttracehop-on nginx\n")
    rows = ["round\tworkload\tload\ttarget\traw\ttarget_ticks\tupstream_ticks\tsink_ticks"
            "\tbusy_ticks\ttotal_ticks\trss_load_kb"]
    # Round 1: nginx 10,000 req/s, tracehop-on 12,000 (1.20 ×); round 2: the
    # machine is slower for everyone, 5,000 and 5,500 (1.10 ×).
    figures = {("1", "direct"): 30000, ("1", "tracehop-on"): 12000, ("1", "nginx"): 10000,
               ("2", "direct"): 15000, ("2", "tracehop-on"): 5500, ("2", "nginx"): 5000}
    for (rnd, target), requests in figures.items():
        raw = f"r{rnd}-get-sat-{target}.txt"
        (d / "raw" / raw).write_text(wrk_line(requests))
        # CPU: 100 ticks (1 s) for every target, so CPU/request is 1e6 / requests.
        rows.append(f"{rnd}\tget\tsat\t{target}\t{raw}\t100\t50\t0\t150\t200\t10240")
    (d / "runs.tsv").write_text("\n".join(rows) + "\n")
    (d / "idle10k.tsv").write_text(
        "round\ttarget\tconns\topened\tfailed\talive\tseconds\trss_before_kb\trss_idle_kb\n"
        "1\ttracehop-on\t10000\t10000\t0\t10000\t3\t10000\t30000\n"      # 2 KiB per connection
        "1\tnginx\t10000\t10000\t0\t10000\t3\t20000\t30000\n"            # 1 KiB per connection
        # Round 2 reuses round 1's memory: less growth, which must not hide round 1's.
        "2\ttracehop-on\t10000\t9990\t10\t9990\t3\t29000\t30000\n"
        "2\tnginx\t10000\t10000\t0\t10000\t3\t29900\t30000\n")
    (d / "raw" / "r1-idle-10k-tracehop-on.txt").write_text("open 10000 0 3\nalive 10000\n")
    return d


class Report(unittest.TestCase):
    def test_ratios_are_taken_within_each_round_then_the_median(self):
        with tempfile.TemporaryDirectory() as tmp:
            text = report.report(results_dir(tmp))
        row = next(line for line in text.splitlines() if line.startswith("| tracehop-on | 8750 |"))
        self.assertIn("| 1.15 (1.10–1.20) |", row)   # req/s × nginx
        self.assertIn("| 0.87 (0.83–0.91) |", row)   # CPU × nginx: the inverse, per round

    def test_a_verdict_says_when_its_rounds_fall_on_both_sides_of_the_bar(self):
        with tempfile.TemporaryDirectory() as tmp:
            text = report.report(results_dir(tmp))
        row = next(line for line in text.splitlines() if line.startswith("| get | "))
        # Rounds 1.20 and 1.10 against get's 1.2 ×: the median fails, one round passed.
        self.assertIn("| 1.15 FAIL, rounds disagree (1.10–1.20) |", row)
        # CPU × nginx 0.83 and 0.91 against 0.85: the same.
        self.assertIn("| 0.87 FAIL, rounds disagree (0.83–0.91) |", row)
        at_least = lambda x: x >= 1.0
        self.assertEqual(report.verdict(1.05, at_least, [1.01, 1.2]), "1.05 pass")
        self.assertEqual(report.verdict(0.9, at_least, [0.8, 0.95, None]), "0.90 FAIL")
        self.assertEqual(report.verdict(1.05, at_least, [0.6, 2.9]),
                         "1.05 pass, rounds disagree (0.60–2.90)")
        self.assertEqual(report.verdict(0.996, at_least), "0.996 FAIL")
        self.assertEqual(report.verdict(1.004, lambda x: x <= 1.0), "1.004 FAIL")
        self.assertEqual(report.verdict(1.0003, lambda x: x <= 1.0), "1.0003 FAIL")

    def test_idle_figures_per_connection_against_nginx(self):
        with tempfile.TemporaryDirectory() as tmp:
            text = report.report(results_dir(tmp))
        self.assertIn("| tracehop-on | 9990 of 10000 | 9990 | 9.8 | 29.3 | 2.00 | 2.00 |", text)
        self.assertIn("idle-10k: KiB per connection × nginx 2.00 FAIL", text)

    def test_readme_section_is_replaced_between_the_markers_only(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = results_dir(tmp)
            readme = Path(tmp) / "README.md"
            readme.write_text(f"# Title\n\nbefore\n\n{report.README_BEGIN}\nold table\n"
                              f"{report.README_END}\n\nafter\n")
            self.assertEqual(report.write_readme(d, readme), 0)
            text = readme.read_text()
            self.assertNotIn("old table", text)
            self.assertIn("bench/compare.sh --rounds 2", text)
            self.assertTrue(text.startswith("# Title\n\nbefore\n\n"))
            self.assertTrue(text.endswith(f"{report.README_END}\n\nafter\n"))
            self.assertEqual(text.count(report.README_END), 1)

    def test_readme_without_markers_is_refused_and_left_alone(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = results_dir(tmp)
            readme = Path(tmp) / "README.md"
            readme.write_text("# Title\n")
            self.assertEqual(report.write_readme(d, readme), 2)
            self.assertEqual(readme.read_text(), "# Title\n")


if __name__ == "__main__":
    unittest.main()
