from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Shared primitives"

    def ready(self) -> None:
        from prometheus_client import disable_created_metrics

        # The event counters read the same from one process as from many (core.prometheus): the multiprocess
        # mode keeps no `_created` series, so neither does a single process.
        disable_created_metrics()  # type: ignore[no-untyped-call]
