from __future__ import annotations

from django.apps import AppConfig


class TestingConfig(AppConfig):
    name = "testsupport"
    label = "testing"
    verbose_name = "Test support"
