"""The cron-job registry: `background-jobs` built in, more from `settings.CRON_JOBS`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from core.errors import one_line
from dispatch.exceptions import CallableImportError, InvalidParam, RegistryError
from dispatch.timetable import FixedWindows, Timetable, timetable_parse

BACKGROUND_JOBS = "background-jobs"
JOB_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")
PARAM_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
PARAM_TYPES = ("str", "int", "bool")
MAX_PARAM_LENGTH = 200
CatchUp = Literal["skip", "latest", "all"]
CATCH_UP_POLICIES: tuple[CatchUp, ...] = ("skip", "latest", "all")
DEFAULT_CATCH_UP_MAX = 10
MAX_CATCH_UP_MAX = 1000
ENTRY_KEYS = (
    "name", "window_seconds", "schedule", "timezone", "tolerance_seconds", "callable", "params", "catch_up",
    "catch_up_max",
)  # fmt: skip
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class CronContext:
    """What a cron job's callable receives, inline or inside its Inngest function."""

    job: str
    params: dict[str, Any]
    now: datetime
    budget_seconds: float
    dispatch_key: str
    correlation_id: str
    source: str
    run_id: str = ""


class CronCallable(Protocol):
    def __call__(self, ctx: CronContext, /) -> Any: ...


@dataclass(frozen=True)
class ParamSpec:
    """One query parameter a cron job accepts."""

    name: str
    type: Literal["str", "int", "bool"] = "str"
    required: bool = False
    choices: tuple[str, ...] = ()

    def parse(self, raw: str) -> str | int | bool:
        """Return the typed value of `raw`; raise InvalidParam saying what is accepted."""
        if len(raw) > MAX_PARAM_LENGTH:
            raise InvalidParam(self.name, f"longer than {MAX_PARAM_LENGTH} characters")
        if self.type == "int":
            if not re.fullmatch(r"-?[0-9]{1,18}", raw):
                raise InvalidParam(self.name, "must be an integer")
            return int(raw)
        if self.type == "bool":
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise InvalidParam(self.name, "must be true or false")
        if self.choices and raw not in self.choices:
            raise InvalidParam(self.name, f"must be one of: {', '.join(self.choices)}")
        if not raw.isprintable():
            raise InvalidParam(self.name, "must be printable text")
        return raw


@dataclass(frozen=True)
class WorkUnit:
    """One piece of a cron job's work: one event, one Inngest function, one ledger row per window."""

    function_id: str
    event: str
    callable_path: str

    def load(self) -> CronCallable:
        """Import and return the unit's callable."""
        target: CronCallable = import_string(self.callable_path)
        return target


@dataclass(frozen=True)
class CronJob:
    """A registered cron job: the events the dispatcher publishes, the work that runs inline."""

    name: str
    # Fixed windows (`window_seconds`) or a calendar (`schedule` in a `timezone`): dispatch.timetable.
    timetable: Timetable
    units: tuple[WorkUnit, ...]
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    # What the reconciler does with windows no tick came for: record them `missed` (skip), or
    # dispatch the most recent one (latest), or the most recent `catch_up_max` of them (all).
    catch_up: CatchUp = "skip"
    catch_up_max: int = DEFAULT_CATCH_UP_MAX

    @property
    def events(self) -> tuple[str, ...]:
        """Return the names of the events one window publishes."""
        return tuple(unit.event for unit in self.units)

    def is_window_start(self, start: datetime) -> bool:
        """Return whether one of this job's windows starts at `start`: the one test of a window's start.

        A fixed window starts on its boundary; a calendar window at a fire time.
        """
        return self.timetable.is_start(start)

    def only(self, function_id: str) -> CronJob:
        """Return this job narrowed to the one unit `function_id` (to re-run a single function)."""
        units = tuple(unit for unit in self.units if unit.function_id == function_id)
        if not units:
            known = ", ".join(unit.function_id for unit in self.units)
            raise LookupError(f"{self.name} has no function {function_id!r} (it has: {known})")
        return replace(self, units=units)

    @property
    def flag_name(self) -> str:
        """Return the environment flag that turns Inngest dispatch on or off for this job."""
        if self.name == BACKGROUND_JOBS:
            return "BACKGROUND_JOBS_USE_INNGEST"
        return f"CRON_{self.name.upper().replace('-', '_')}_USE_INNGEST"

    def parse_params(self, query: Mapping[str, str]) -> dict[str, Any]:
        """Return the typed params from a query mapping; raise InvalidParam naming the bad one."""
        for name in query:
            if name not in self.params:
                accepted = ", ".join(self.params) or "none"
                raise InvalidParam(name, f"is not accepted by {self.name} (accepted: {accepted})")
        parsed: dict[str, Any] = {}
        for spec in self.params.values():
            if spec.name in query:
                parsed[spec.name] = spec.parse(query[spec.name])
            elif spec.required:
                raise InvalidParam(spec.name, "is required")
        return parsed


BUILTIN = CronJob(
    name=BACKGROUND_JOBS,
    timetable=FixedWindows(seconds=60),
    # Inline, units run in this order: maintenance first returns jobs whose
    # worker died to the queue, so the drain that follows picks them up.
    units=(
        WorkUnit("background-maintenance", "background/maintenance.requested", "runs.units.maintain"),
        WorkUnit("process-background-jobs", "background/process.requested", "runs.units.process_jobs"),
    ),
)


def cron_jobs() -> Mapping[str, CronJob]:
    """Return every registered cron job by name; raise RegistryError when the registry is bad.

    The registry is parsed once per CRON_JOBS setting object (a deployment may
    register thousands of jobs, and the cron view asks on every call).
    """
    source = settings.CRON_JOBS
    if _parsed.source is not source:
        try:
            _parsed.jobs, _parsed.error = _parse_registry(source), None
        except RegistryError as exc:
            _parsed.jobs, _parsed.error = None, exc
        _parsed.source = source
    if _parsed.error is not None:
        raise _parsed.error
    assert _parsed.jobs is not None
    return _parsed.jobs


class _Parsed:
    """The parsed registry and the setting object it was parsed from (kept alive, so its id is stable)."""

    source: object = None
    jobs: Mapping[str, CronJob] | None = None
    error: RegistryError | None = None


_parsed = _Parsed()


def _parse_registry(entries: object) -> Mapping[str, CronJob]:
    if not isinstance(entries, list | tuple):
        raise RegistryError(
            f'CRON_JOBS must be a list of cron jobs, e.g. [{{"name": ...}}]; got {type(entries).__name__}'
        )
    jobs = {BUILTIN.name: BUILTIN}
    problems: list[str] = []
    unimportable: list[str] = []
    for index, entry in enumerate(entries):
        try:
            job = _parse_entry(entry)
        except RegistryError as exc:
            problems.append(f"CRON_JOBS[{index}]: {exc}")
            if isinstance(exc, CallableImportError):
                unimportable.append(problems[-1])
            continue
        if job.name in jobs:
            problems.append(f"CRON_JOBS[{index}]: the name {job.name!r} is already registered")
            continue
        jobs[job.name] = job
    if problems:
        other = "; ".join(problem for problem in problems if problem not in unimportable)
        raise RegistryError("; ".join(problems), unimportable=tuple(unimportable), other=other)
    return MappingProxyType(jobs)


@dataclass(frozen=True)
class RegistryProblems:
    """Why the registry is invalid: each callable that cannot be imported, and the other problems ("" for none)."""

    unimportable: tuple[str, ...] = ()
    other: str = ""

    def __bool__(self) -> bool:
        return bool(self.unimportable or self.other)


def registry_problem() -> RegistryProblems:
    """Return why the registry is invalid (false when it is valid)."""
    unreadable = getattr(settings, "ENVIRONMENT_ERRORS", {}).get("CRON_JOBS")
    if unreadable:
        # Settings kept no extra cron job: say why, rather than serve the built-in job alone quietly.
        return RegistryProblems(other=f"{unreadable}; no cron job of CRON_JOBS is registered until it is fixed")
    try:
        cron_jobs()
    except RegistryError as exc:
        return RegistryProblems(unimportable=exc.unimportable, other=exc.other)
    return RegistryProblems()


def get_cron_job(name: str) -> CronJob | None:
    """Return the cron job called `name`, or None."""
    return cron_jobs().get(name)


def job_of_function(function_id: str) -> CronJob | None:
    """Return the cron job one of whose units is the function `function_id`, or None."""
    for job in cron_jobs().values():
        if any(unit.function_id == function_id for unit in job.units):
            return job
    return None


def _parse_entry(entry: object) -> CronJob:
    if not isinstance(entry, Mapping):
        raise RegistryError(
            "must be a dict with name, window_seconds or schedule, callable and optional timezone, "
            "tolerance_seconds, params, catch_up, catch_up_max"
        )
    unknown = set(entry) - set(ENTRY_KEYS)
    if unknown:
        raise RegistryError(f"unknown keys {sorted(unknown)}; allowed: {', '.join(ENTRY_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not JOB_NAME_RE.fullmatch(name):
        raise RegistryError(f"name {name!r} must match {JOB_NAME_RE.pattern}")
    timetable = timetable_parse(name, entry)
    path = entry.get("callable")
    if not isinstance(path, str):
        raise RegistryError(f"{name}: callable must be a dotted path such as 'myapp.tasks.run'")
    try:
        target = import_string(path)
    except Exception as exc:  # the job's own module: missing, without the name, or raising anything as it loads
        raise CallableImportError(f"{name}: cannot import callable {path!r}: {one_line(exc)}") from exc
    if not callable(target):
        raise RegistryError(f"{name}: {path!r} is not callable")
    catch_up = entry.get("catch_up", "skip")
    if catch_up not in CATCH_UP_POLICIES:
        raise RegistryError(f"{name}: catch_up={catch_up!r} must be one of {', '.join(CATCH_UP_POLICIES)}")
    catch_up_max = entry.get("catch_up_max", DEFAULT_CATCH_UP_MAX)
    if type(catch_up_max) is not int or not 1 <= catch_up_max <= MAX_CATCH_UP_MAX:
        raise RegistryError(f"{name}: catch_up_max={catch_up_max!r} must be a whole number, 1 to {MAX_CATCH_UP_MAX}")
    return CronJob(
        name=name,
        timetable=timetable,
        units=(WorkUnit(f"cron-{name}", f"cron/{name}.requested", path),),
        params=_parse_params(name, entry.get("params", {})),
        catch_up=catch_up,
        catch_up_max=catch_up_max,
    )


def _parse_params(job: str, raw: object) -> dict[str, ParamSpec]:
    if not isinstance(raw, Mapping):
        raise RegistryError(f"{job}: params must be a dict of name -> spec")
    specs: dict[str, ParamSpec] = {}
    for name, spec in raw.items():
        if not isinstance(name, str) or not PARAM_NAME_RE.fullmatch(name):
            raise RegistryError(f"{job}: param name {name!r} must match {PARAM_NAME_RE.pattern}")
        if not isinstance(spec, Mapping) or set(spec) - {"type", "required", "choices"}:
            raise RegistryError(f"{job}: param {name} must be a dict with type, required, choices")
        kind = spec.get("type", "str")
        if kind not in PARAM_TYPES:
            raise RegistryError(f"{job}: param {name} has type {kind!r}; use one of {', '.join(PARAM_TYPES)}")
        choices = spec.get("choices", ())
        if not isinstance(choices, list | tuple) or not all(isinstance(c, str) for c in choices):
            raise RegistryError(f"{job}: param {name} choices must be a list of strings")
        specs[name] = ParamSpec(name=name, type=kind, required=bool(spec.get("required")), choices=tuple(choices))
    return specs
