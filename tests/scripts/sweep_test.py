"""scripts/sweep and gang timeline, end to end: an interrupted sweep resumes
where it stopped, and writes the CSV, the heatmap and two timelines.
argv: GANG_BINARY"""
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GANG = os.path.abspath(sys.argv[1])
PNG = b"\x89PNG\r\n\x1a\n"


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG and os.path.getsize(path) > 2000


def main():
    with tempfile.TemporaryDirectory(prefix="gang-sweep-test-") as tmp:
        # matplotlib's font cache and config, out of HOME (which tests never touch).
        os.environ["MPLCONFIGDIR"] = os.path.join(tmp, "mpl")
        defs = os.path.join(tmp, "defs")
        rel = subprocess.run([os.path.join(ROOT, "scripts", "gen-definitions"), defs, "--chunks", "4",
                              "--sleep", "0.3", "--shape", "mixed"],
                             check=True, capture_output=True, text=True).stdout.strip()
        target = os.path.join(defs, rel)
        out = os.path.join(tmp, "out")
        sweep = ["/usr/bin/python3", os.path.join(ROOT, "scripts", "sweep"), target, "--gang", GANG,
                 "--instances", "1,2", "--max-jobs", "1", "--repeat", "2", "--out", out]
        # Interrupt the sweep once its first run is done.
        first = subprocess.Popen(sweep, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        runs = os.path.join(out, "runs")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            if os.path.isdir(runs) and any(n.endswith(".json") for n in os.listdir(runs)):
                break
            time.sleep(0.05)
        check(first.poll() is None, "the sweep ended before it could be interrupted")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        done = sorted(n for n in os.listdir(runs) if n.endswith(".json"))
        check(1 <= len(done) < 4, f"runs done before the interruption: {done}")

        second = subprocess.run(sweep + ["--json"], capture_output=True, text=True, timeout=300)
        check(second.returncode == 0, f"the resumed sweep failed: {second.stderr}")
        check("resuming" in second.stderr, f"no resume message: {second.stderr}")
        summary = json.loads(second.stdout)
        check(summary["runs"] == 4, f"runs: {summary['runs']}")
        check(summary["ran_now"] == 4 - len(done), f"ran now {summary['ran_now']}, done before {done}")
        with open(os.path.join(out, "sweep.csv")) as f:
            rows = list(csv.DictReader(f))
        check(len(rows) == 4, f"csv rows: {len(rows)}")
        check({(r["instances"], r["repeat"]) for r in rows} ==
              {("1", "1"), ("2", "1"), ("1", "2"), ("2", "2")}, f"csv cells: {rows}")
        for r in rows:
            check(r["exit_status"] == "0" and float(r["wall_s"]) > 0, f"row {r}")
            check(r["built"] == "6", f"every run starts from the same (empty) state: {r}")
        for name in ("sweep.png", "timeline-best.png", "timeline-worst.png"):
            check(is_png(os.path.join(out, name)), f"{name} is not a PNG")

        # gang timeline: an SVG on request, and a clear error for a file that is no report.
        report = os.path.join(runs, done[0])
        svg = os.path.join(tmp, "t.svg")
        t = subprocess.run([GANG, "timeline", report, "-o", svg], capture_output=True, text=True)
        check(t.returncode == 0, f"timeline: {t.stderr}")
        with open(svg) as f:
            check("<svg" in f.read(), "the timeline SVG holds no <svg>")
        bad = os.path.join(tmp, "bad.json")
        with open(bad, "w") as f:
            f.write("[1, 2]")
        t = subprocess.run([GANG, "timeline", bad], capture_output=True, text=True)
        check(t.returncode != 0 and "not a gang run report" in t.stderr, f"bad report: {t.stderr}")
    print("sweep_test: ok")


if __name__ == "__main__":
    main()
