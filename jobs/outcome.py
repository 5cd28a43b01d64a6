"""What an attempt leaves on its job row: the return value it succeeded with, or the error it failed with.

Both are bounded, so a job row stays small: a return value is JSON of at most
JOBS_RETURN_VALUE_MAX_BYTES (else the attempt fails, saying so), and a job keeps the
last MAX_ERRORS_KEPT errors, each traceback at most MAX_TRACEBACK_CHARS (its end, where
the exception is).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django_tasks.utils import get_exception_traceback, get_module_path, normalize_json

from jobs.exceptions import not_retriable
from jobs.models import MAX_ERRORS_KEPT, BackgroundJob

MAX_TRACEBACK_CHARS = 8000
TRIMMED = "… (traceback trimmed to its last {} characters)\n"


class ReturnValueTooLarge(ValueError):
    """A handler returned more than a job row keeps."""


def return_value_stored(value: Any) -> Any:
    """Return `value` as the job row stores it (JSON), or raise TypeError/ValueError saying why it cannot be.

    Non-JSON values are refused as the Tasks framework refuses them (TypeError
    "Unsupported type: ..."), NaN and infinities as ValueError; none of these is retried.
    """
    if value is None:
        return None
    try:
        stored = normalize_json(value)
        encoded = json.dumps(stored, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        not_retriable(exc)  # the same code would return the same kind of value again
        raise
    limit = settings.JOBS_RETURN_VALUE_MAX_BYTES
    if len(encoded.encode()) > limit:
        raise not_retriable(
            ReturnValueTooLarge(
                f"the return value is {len(encoded.encode()):,} bytes of JSON; a job keeps at most {limit:,} "
                "(JOBS_RETURN_VALUE_MAX_BYTES): store large results elsewhere and return a reference"
            )
        )
    return stored


def errors_with(job: BackgroundJob, exc: BaseException) -> list[dict[str, Any]]:
    """Return the job's errors with the one `exc` adds (its attempt, class path and traceback), the last ones kept."""
    traceback = get_exception_traceback(exc)
    if len(traceback) > MAX_TRACEBACK_CHARS:
        traceback = TRIMMED.format(MAX_TRACEBACK_CHARS) + traceback[-MAX_TRACEBACK_CHARS:]
    entry = {"attempt": job.attempts, "exception_class_path": get_module_path(type(exc)), "traceback": traceback}
    return [*job.errors, entry][-MAX_ERRORS_KEPT:]
