"""What the service says when it cannot reach its database: a 503 JSON answer from a view.

A JSON endpoint that needs the database answers `503` with a one-line JSON error,
never Django's HTML 500 page, when a connection is refused, lost or times out; the
full error goes to the log.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.errors import one_line

logger = logging.getLogger(__name__)

# What a refused, lost or timed-out connection raises.
CONNECTION_ERRORS = (OperationalError, InterfaceError)

View = TypeVar("View", bound=Callable[..., HttpResponse])


def unavailable_as_503(*, action: str) -> Callable[[View], View]:
    """Make a view answer 503 JSON (`{"error": "database unavailable (<type>)"}`) when its database is unreachable.

    `action` names the log line's event, as the view's other lines do.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except CONNECTION_ERRORS as exc:
                logger.error(
                    f"{request.method} {request.path} failed: database unavailable",
                    extra={"action": action, "error": one_line(exc)},
                )
                return JsonResponse({"error": f"database unavailable ({type(exc).__name__})"}, status=503)

        return answer  # type: ignore[return-value]

    return decorate
