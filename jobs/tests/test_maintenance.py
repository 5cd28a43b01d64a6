from __future__ import annotations

import pytest

from jobs import maintenance


def test_maintenance_task__refuses_a_second_task_under_one_name() -> None:
    from django.core.exceptions import ImproperlyConfigured

    saved = dict(maintenance._tasks)
    try:
        maintenance.maintenance_task("twice")(lambda *, now: {})
        with pytest.raises(ImproperlyConfigured, match="'twice' is registered twice"):
            maintenance.maintenance_task("twice")(lambda *, now: {})
    finally:
        maintenance._tasks.clear()
        maintenance._tasks.update(saved)
