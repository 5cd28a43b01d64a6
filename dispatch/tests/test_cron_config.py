"""`manage.py cron_config`: the cron service's configuration from the registry; and `manage.py cron_jobs`."""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from freezegun import freeze_time

from dispatch.calendar import Calendar
from dispatch.cron_config import on_calendar_specs
from dispatch.models import CronJobState, DispatchWindow

COUNT_RUN = "testsupport.crons.count_run"
URL = "https://orch.example.com"


@pytest.fixture(autouse=True)
def registry(settings: Any) -> None:
    settings.CRON_JOBS = [
        {"name": "report", "schedule": "0 9 * * 1-5", "timezone": "Europe/Berlin", "callable": COUNT_RUN},
        {"name": "either", "schedule": "30 2 1,15 * MON", "timezone": "America/New_York", "callable": COUNT_RUN},
        {"name": "ninety", "window_seconds": 5400, "callable": COUNT_RUN},
    ]


def config(*args: str) -> str:
    out = StringIO()
    call_command("cron_config", *args, stdout=out)
    return out.getvalue()


def test_cron_config__crontab_has_each_jobs_schedule_in_its_zone_and_never_the_secret(settings: Any) -> None:
    settings.CRON_SECRET = "s3cret-never-printed"

    text = config("--format", "crontab", "--url", URL)

    curl = (
        '. /etc/orchestrator/cron.env && printf "Authorization: Bearer \\%s" "$CRON_SECRET" | '
        "curl -fsS -m 30 -X POST -H @- https://orch.example.com/api/cron/"
    )
    entries = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert entries == [
        "CRON_TZ=UTC",
        f"* * * * * {curl}background-jobs >/dev/null",
        "CRON_TZ=Europe/Berlin",
        f"0 9 * * 1-5 {curl}report >/dev/null",
        "CRON_TZ=America/New_York",
        f"30 2 1,15 * MON {curl}either >/dev/null",
        "CRON_TZ=UTC",
        # 90-minute windows: on the hour every 3 hours from 00:00, at half past every 3 hours from 01:30.
        f"0 */3 * * * {curl}ninety >/dev/null",
        f"30 1,4,7,10,13,16,19,22 * * * {curl}ninety >/dev/null",
    ]
    assert "s3cret" not in text


def test_cron_config__kubernetes_cronjobs_read_the_secret_from_a_kubernetes_secret() -> None:
    text = config("--format", "kubernetes", "--url", URL + "/", "--secret-env", "ORCH_CRON_SECRET")

    documents = text.split("\n---\n")
    assert len(documents) == 5  # background-jobs, report, either, and ninety's two schedules
    report = documents[1]
    assert "  name: cron-report\n" in report
    assert '  schedule: "0 9 * * 1-5"\n  timeZone: "Europe/Berlin"\n' in report
    assert (
        '  command: ["/bin/sh", "-c", "printf \\"Authorization: Bearer %s\\" \\"$ORCH_CRON_SECRET\\" | curl -fsS -m 30 '
        '-X POST -H @- https://orch.example.com/api/cron/report"]\n'
    ) in report
    assert 'secretKeyRef: {name: "orchestrator-cron", key: "ORCH_CRON_SECRET"}' in report
    assert re.findall(r"name: (cron-ninety-\d)", text) == ["cron-ninety-1", "cron-ninety-2"]


def test_cron_config__systemd_timers_with_one_calendar_event_per_cron_day_rule() -> None:
    text = config("--format", "systemd", "--url", URL)

    assert "OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 09:00:00 Europe/Berlin\n" in text
    # Neither day field is `*`: cron(8) runs on the 1st and the 15th OR on Mondays.
    assert "OnCalendar=Mon *-*-* 02:30:00 America/New_York\nOnCalendar=*-*-01,15 02:30:00 America/New_York\n" in text
    assert "OnCalendar=*-*-* 00/3:00:00 UTC\nOnCalendar=*-*-* 01/3:30:00 UTC\n" in text
    assert (
        """ExecStart=/bin/sh -c 'printf "Authorization: Bearer %%s" "$$CRON_SECRET" | curl -fsS -m 30 -X POST -H @- """
        """https://orch.example.com/api/cron/report'\n"""
    ) in text
    assert "AccuracySec=1s" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("0 9 * * 1-5", "Europe/Berlin"),
        ("30 2 1,15 * MON", "America/New_York"),
        ("*/20 8-17 * * *", "Asia/Kolkata"),
        ("0 0 1 */3 *", "UTC"),
    ],
)
def test_cron_config__systemd_fires_when_the_calendar_does(expression: str, zone: str) -> None:
    """systemd's own calendar arithmetic agrees with cronsim's, away from a DST change (docs/cron.md)."""
    calendar = Calendar(expression, zone)
    base = datetime(2026, 4, 10, 12, tzinfo=UTC)
    elapses: set[datetime] = set()
    for spec in on_calendar_specs(calendar):
        shown = subprocess.run(
            ["systemd-analyze", "calendar", "--iterations=6", f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC", spec],
            capture_output=True,
            text=True,
            check=True,
            env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
        ).stdout
        elapses |= {
            datetime.strptime(found, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            for found in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", shown)
        }
    expected = [calendar.after(base)]
    while len(expected) < 6:
        expected.append(calendar.after(expected[-1]))
    assert sorted(elapses)[:6] == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "crontab", "--url", "orch.example.com"], "give the service's base URL"),
        (["--format", "systemd", "--url", URL + "/$(id)"], "give the service's base URL"),
        (["--format", "crontab", "--url", URL + "/a'b"], "give the service's base URL"),
        (["--format", "crontab", "--url", URL, "--secret-env", "CRON SECRET"], "give a variable name"),
        (["--format", "systemd", "--url", URL, "--env-file", "cron.env"], "give an absolute path"),
    ],
)
def test_cron_config__bad_arguments_say_what_to_type(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        config(*args)


@pytest.mark.django_db
@freeze_time("2026-03-27T09:30:00Z")
def test_cron_jobs__json_is_one_object_per_job_with_its_schedule_words_and_next_five() -> None:
    start = datetime(2026, 3, 27, 8, tzinfo=UTC)
    DispatchWindow.objects.create(
        dispatch_key="cron:report:2026-03-27T08:00", job="report", status="enqueued", mode="dispatch", source="cron",
        correlation_id="c", window_start=start, window_seconds=255_600, requested_at=start, lateness_ms=1_500,
    )  # fmt: skip
    CronJobState.objects.create(job="report", paused=True, paused_at=start)
    out = StringIO()

    call_command("cron_jobs", "--json", stdout=out)

    jobs = {body["name"]: body for body in map(json.loads, out.getvalue().splitlines())}
    assert list(jobs) == ["background-jobs", "report", "either", "ninety"]
    report = jobs["report"]
    assert {key: report[key] for key in ("schedule", "timezone", "description", "next", "paused")} == {
        "schedule": "0 9 * * 1-5",
        "timezone": "Europe/Berlin",
        "description": "At 09:00, Monday through Friday, Europe/Berlin",
        "next": [  # Monday is after the spring change: 09:00 CEST is 07:00 UTC
            "2026-03-30T07:00:00.000Z",
            "2026-03-31T07:00:00.000Z",
            "2026-04-01T07:00:00.000Z",
            "2026-04-02T07:00:00.000Z",
            "2026-04-03T07:00:00.000Z",
        ],
        "paused": True,
    }
    assert report["lastWindow"] == {
        "dispatchKey": "cron:report:2026-03-27T08:00",
        "windowStart": "2026-03-27T08:00:00.000Z",
        "status": "enqueued",
        "mode": "dispatch",
        "source": "cron",
    }
    assert (report["latenessSeconds"], report["latenessP95Seconds"]) == (1.5, 1.5)
    ninety = jobs["ninety"]
    assert (ninety["schedule"], ninety["windowSeconds"], ninety["timezone"], ninety["lastWindow"]) == (
        None,
        5400,
        "UTC",
        None,
    )
    assert ninety["next"][:2] == ["2026-03-27T10:30:00.000Z", "2026-03-27T12:00:00.000Z"]


# Kubernetes reads a CronJob's schedule with robfig/cron v3 (ParseStandard), whose day of week is 0-6 (spec.go:
# `dow = bounds{0, 6, ...}`): a 7 is refused ("end of range (7) above maximum (6)"), and the CronJob with it.
@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("0 0 * * 7", "UTC"),
        ("0 9 * * 5-7", "Europe/Berlin"),
        ("30 2 * * 1-7/2", "America/New_York"),
        ("0 6 1 * 7", "Asia/Kolkata"),  # neither day field a `*`: the 1st OR Sundays, as before
        ("0 8 * * */7", "UTC"),  # a step of 7 is no day: kept as written
    ],
)
def test_cron_config__kubernetes_schedules_name_sunday_as_kubernetes_reads_it(
    settings: Any, expression: str, zone: str
) -> None:
    settings.CRON_JOBS = [{"name": "weekly", "schedule": expression, "timezone": zone, "callable": COUNT_RUN}]

    text = config("--format", "kubernetes", "--url", URL)

    schedule = json.loads(re.findall(r"cron-weekly\n(?:.*\n)*?  schedule: (\".*\")\n", text)[0])
    days = [int(day) for item in schedule.split()[4].split(",") for day in re.findall(r"\d+", item.split("/")[0])]
    assert all(day <= 6 for day in days), schedule
    emitted, registered = Calendar(schedule, zone), Calendar(expression, zone)
    fire, expected = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    for _ in range(40):  # across the spring change
        fire, expected = emitted.after(fire), registered.after(expected)
        assert fire == expected


@pytest.mark.django_db(transaction=True)
def test_cron_config__a_crontab_line_run_as_cron_runs_it_sends_the_secret(
    settings: Any, live_server: Any, tmp_path: Any
) -> None:
    """cron(8) runs a line with the crontab's own variables, never the daemon's environment (do_command.c in cronie
    and Debian's cron: `execle(shell, shell, "-c", e->cmd, ..., e->envp)`): the secret comes from the env file."""
    settings.CRON_SECRET = "s3cret-in-the-env-file"
    env_file = tmp_path / "cron.env"
    env_file.write_text("CRON_SECRET=s3cret-in-the-env-file\n")
    text = config("--format", "crontab", "--url", live_server.url, "--env-file", str(env_file))
    line = next(line for line in text.splitlines() if line.endswith("/api/cron/ninety >/dev/null"))

    # What cron does with the line: the five fields off, `\%` back to `%`, run by /bin/sh with the job's own
    # environment (HOME, SHELL, LOGNAME, PATH=/usr/bin:/bin), none of the variables cron itself was started with.
    command = line.split(" ", 5)[5].replace("\\%", "%")
    env = {"HOME": str(tmp_path), "SHELL": "/bin/sh", "LOGNAME": "cron", "PATH": "/usr/bin:/bin"}
    ran = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=60)

    assert (ran.returncode, ran.stderr) == (0, "")
    assert DispatchWindow.objects.filter(job="ninety", source="cron").count() == 1
    assert "s3cret" not in text


# --- Each format's tick, run as its service runs it, against a local HTTP server ---------------------------------


@dataclass
class Tick:
    path: str
    authorization: str | None
    argv_with_secret: list[str]  # the argument lists that held the secret while the request was in flight


@pytest.fixture
def tick_server() -> Iterator[tuple[str, list[Tick]]]:
    """Serve POSTs on a free port; each request records its header and every process argv holding the secret."""
    ticks: list[Tick] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            # curl and its shell are still running: their argument lists are what `ps` shows now.
            ticks.append(Tick(self.path, self.headers.get("Authorization"), _argv_holding(SECRET)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", ticks
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


SECRET = "s3cret-" + secrets.token_hex(12)
SHELL_ENV = {"HOME": "/tmp", "LOGNAME": "cron", "PATH": "/usr/bin:/bin"}


def _argv_holding(secret: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes()
        except OSError:  # a process that ended meanwhile, or another user's
            continue
        if secret.encode() in argv:
            found.append(argv.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _crontab_run(text: str, env_file: Path) -> tuple[list[str], dict[str, str]]:
    # cron(8): the five fields off, `\%` back to `%`, /bin/sh -c with the crontab's own variables only.
    line = next(line for line in text.splitlines() if line.endswith("/api/cron/ninety >/dev/null"))
    return ["/bin/sh", "-c", line.split(" ", 5)[5].replace("\\%", "%")], SHELL_ENV


def _kubernetes_run(text: str, env_file: Path) -> tuple[list[str], dict[str, str]]:
    # The container's command as the kubelet runs it, the Secret's key in its environment. The kubelet expands
    # `$(VAR)` in a command itself, putting the value in the argument list: there must be none.
    document = next(document for document in text.split("\n---\n") if "  name: cron-ninety-1\n" in document)
    command = json.loads(re.findall(r"\n +command: (\[.*\])\n", document)[0])
    assert not any("$(" in arg for arg in command), command
    assert 'secretKeyRef: {name: "orchestrator-cron", key: "CRON_SECRET"}' in document
    return command, {**SHELL_ENV, "CRON_SECRET": SECRET}


def _systemd_run(text: str, env_file: Path) -> tuple[list[str], dict[str, str]]:
    # systemd.service(5), "Command lines": `%%` is a `%` (another `%` a specifier), `$$` a `$` (another `$` a
    # variable systemd substitutes into the argument list), then quotes split the words (no backslash is used here).
    unit = text.split("### /etc/systemd/system/orchestrator-cron-ninety.service\n")[1].split("\n### ")[0]
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    value = line.removeprefix("ExecStart=")
    assert "%" not in value.replace("%%", "") and "$" not in value.replace("$$", "") and "\\" not in value, value
    assert f"EnvironmentFile={env_file}\n" in unit
    if shutil.which("systemd-analyze"):
        (env_file.parent / "orchestrator-cron-ninety.service").write_text(unit)
        subprocess.run(
            ["systemd-analyze", "verify", str(env_file.parent / "orchestrator-cron-ninety.service")],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    variables = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    return shlex.split(value.replace("%%", "%").replace("$$", "$")), {**SHELL_ENV, **variables}


@pytest.mark.parametrize("format", ["crontab", "kubernetes", "systemd"])
def test_cron_config__a_tick_sends_the_secret_from_the_environment_and_no_argument_list_holds_it(
    format: str, tmp_path: Path, tick_server: tuple[str, list[Tick]]
) -> None:
    url, ticks = tick_server
    env_file = tmp_path / "cron.env"
    env_file.write_text(f"CRON_SECRET={SECRET}\n")
    text = config("--format", format, "--url", url, "--env-file", str(env_file))
    argv, env = {"crontab": _crontab_run, "kubernetes": _kubernetes_run, "systemd": _systemd_run}[format](
        text, env_file
    )

    ran = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

    assert (ran.returncode, ran.stderr) == (0, "")
    assert ticks == [Tick("/api/cron/ninety", f"Bearer {SECRET}", [])]
    assert SECRET not in text


def test_cron_config__kubernetes_refuses_two_jobs_that_would_be_one_cronjob(settings: Any) -> None:
    settings.CRON_JOBS = [
        {"name": "ninety", "window_seconds": 5400, "callable": COUNT_RUN},  # two schedules: cron-ninety-1 and -2
        {"name": "ninety-1", "schedule": "0 9 * * *", "callable": COUNT_RUN},
    ]
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("cron_config", "--format", "kubernetes", "--url", URL, stdout=out)

    assert str(raised.value) == (
        "the cron jobs 'ninety' and 'ninety-1' would both be the Kubernetes CronJob 'cron-ninety-1': "
        "rename one of them in CRON_JOBS"
    )
    assert out.getvalue() == ""


def test_cron_config__kubernetes_names_are_dns_labels_of_at_most_52_characters(settings: Any) -> None:
    longest = "a" * 47 + "b"
    settings.CRON_JOBS = [
        {"name": longest, "window_seconds": 5400, "callable": COUNT_RUN},
        {"name": "a" * 47 + "c", "window_seconds": 5400, "callable": COUNT_RUN},
        {"name": "trailing-", "schedule": "0 9 * * *", "callable": COUNT_RUN},
    ]

    names = re.findall(r"\nmetadata:\n  name: (.*)\n", config("--format", "kubernetes", "--url", URL))

    assert len(names) == len(set(names)) == 6  # background-jobs, two per 90-minute job, trailing-
    assert all(len(name) <= 52 and re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name) for name in names), names
