from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Shared primitives"

    def ready(self) -> None:
        from prometheus_client import disable_created_metrics

        from core.prometheus import metrics_files_guard

        # The event counters read the same from one process as from many (core.prometheus): the multiprocess
        # mode keeps no `_created` series, so neither does a single process.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        # A metrics directory removed under the process (a temporary-files cleaner) must not fail what it counts.
        metrics_files_guard()
