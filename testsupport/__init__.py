"""Test support: a Django app installed only by testsupport.settings.

It holds handlers and a cron job that record every run in a table (so tests can
count runs across processes), helpers to start processes and a live gunicorn
against the test database, and the loopback Inngest servers (docs/inngest.md, 'How the Inngest side is tested').
"""
