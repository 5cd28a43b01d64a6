"""Test support for the admin: the password every test operator signs in with."""

from __future__ import annotations

STAFF_PASSWORD = "operator-password-1"
