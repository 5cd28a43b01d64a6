"""A child process that runs the reconciler once, released together with its siblings.

Usage: python -m testsupport.reconcile_race NOW
It prints READY once set up, waits for a line on stdin (so that every process
starts together), runs the reconciler as of NOW and prints RESULT {summary}.
"""

from __future__ import annotations

import json
import sys

import django


def main() -> None:
    django.setup()
    from core.timefmt import parse_iso_utc
    from runs.reconcile import reconcile

    now = parse_iso_utc(sys.argv[1])
    print("READY", flush=True)
    sys.stdin.readline()
    print("RESULT " + json.dumps(reconcile(now=now)), flush=True)


if __name__ == "__main__":
    main()
