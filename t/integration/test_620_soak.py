"""A short soak in CI: t/soak/run with its own realm, a thousand mixed
requests after the warm-up under mpm_event and mpm_prefork. Every answer
right, no descriptor added but pooled back-end sockets, no credential cache
left, the children's own memory (RssAnon) flat. The long run and its
figures are in docs/reliability.md."""

import json
import os
import subprocess
import sys

from conftest import REPO


def test_soak_event_and_prefork(module_path, tmp_path):
    report = tmp_path / "soak.json"
    proc = subprocess.run(
        ["/usr/bin/python3", os.path.join(REPO, "t", "soak", "run"), "--requests", "1000",
         "--module", module_path, "--json", str(report)],
        capture_output=True, text=True, timeout=600)
    sys.stdout.write(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    doc = json.loads(report.read_text())
    assert [r["mpm"] for r in doc["runs"]] == ["event", "prefork"]
    for run in doc["runs"]:
        assert run["wrong"] == 0 and run["ccaches_left"] == 0
        assert run["children_replaced"] == 0 and run["children_measured"] >= 2
        # no descriptor added but sockets, and those within mod_proxy's pool
        # of idle back-end connections (one per worker thread)
        sockets = run["sockets_end"] - run["sockets_after_warmup"]
        assert run["fds_end"] - run["fds_after_warmup"] - sockets <= 0, run
        assert sockets <= run["socket_slack"], run
        # every kind was exercised and answered right
        assert all(a["right"] > 0 and a["wrong"] == 0 for a in run["answers"].values())
        # heap and stacks of the same children: flat within noise once the
        # last worker threads have had their first requests. On a busy
        # machine event's 16 threads may still be warming up after 3/5 of the
        # run: one step of up to ~250 kB (a thread's first requests bring its
        # malloc arena), then flat again. A leak grows at every step instead:
        # 0.5 kB a request adds 100 kB to each fifth (200 requests), so the
        # smaller of the last two steps must stay under 1.5 %, and the whole
        # from 3/5 under 6 % (not under ASan: its quarantine keeps freed
        # memory, up to 256 MB)
        series = run["anon_kb_series"]
        if not os.environ.get("KDLAB_PRELOAD"):
            assert run["anon_growth_pct"] < 15, series
            steps = [b - a for a, b in zip(series[2:], series[3:])]
            assert min(steps) < 0.015 * series[2], series
            assert series[-1] - series[2] < 0.06 * series[2], series
    if doc["sanitizer_reports"] is not None:
        assert doc["sanitizer_reports"] == 0
