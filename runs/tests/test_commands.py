from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_run_maintenance__prints_the_summary() -> None:
    out = StringIO()

    call_command("run_maintenance", stdout=out)

    assert set(json.loads(out.getvalue())) >= {"recovered", "pruned", "health", "durationMs"}
