from __future__ import annotations

from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Function runs and dead letters"

    def ready(self) -> None:
        # The layers below call up through these hooks; they never import runs.
        from dispatch.hooks import inline_runner_register
        from jobs.hooks import job_died_hook_register, worker_chore_register
        from runs import checks  # noqa: F401  (registers the system checks)
        from runs.inline import run_inline
        from runs.reconcile import reconcile
        from runs.services import dead_letter_for_job

        job_died_hook_register(dead_letter_for_job)
        inline_runner_register(run_inline)
        worker_chore_register(reconcile)
