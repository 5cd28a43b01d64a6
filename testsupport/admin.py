"""Test support for the admin: the password every test operator signs in with, a signed-in client, the message bar."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client

STAFF_PASSWORD = "operator-password-1"


def signed_in(user: User) -> Client:
    """Return a test client signed in as `user`."""
    client = Client()
    client.force_login(user)
    return client


def messages_of(response: Any) -> list[str]:
    """Return the messages the request behind `response` left for the message bar."""
    return [message.message for message in get_messages(response.wsgi_request)]
