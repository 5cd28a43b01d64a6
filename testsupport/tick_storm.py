"""A child process that ticks one window from many threads at once.

Usage: python -m testsupport.tick_storm JOB AT THREADS
It prints READY once set up, waits for a line on stdin (so that every process
starts together), runs THREADS concurrent ticks of JOB at instant AT, and prints
one line per tick: RESULT {"status": ..., "body": ...}.
"""

from __future__ import annotations

import json
import sys
import threading

import django


def main() -> None:
    django.setup()
    from django.db import connection
    from django.utils import timezone

    from core.timefmt import parse_iso_utc
    from dispatch.registry import get_cron_job
    from dispatch.services import dispatch_tick

    job_name, at_text, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    job = get_cron_job(job_name)
    assert job is not None, job_name
    at = parse_iso_utc(at_text)
    barrier = threading.Barrier(threads)
    lines: list[str] = []
    lock = threading.Lock()

    def tick() -> None:
        barrier.wait()
        try:
            result = dispatch_tick(job=job, now=timezone.now(), at=at, source="cron", correlation_id="storm")
            line = "RESULT " + json.dumps({"status": result.status_code, "body": result.body})
        finally:
            connection.close()
        with lock:
            lines.append(line)

    print("READY", flush=True)
    sys.stdin.readline()
    workers = [threading.Thread(target=tick) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for line in lines:
        print(line, flush=True)


if __name__ == "__main__":
    main()
