"""SQL that the apps above share (PostgreSQL only)."""

from __future__ import annotations

# A FROM item that turns synchronous_commit off for the transaction of the statement it
# is in: the commit does not wait for the WAL flush, and a crash may lose it only with
# every later commit. The setting is made from within the statement (no round trip)
# and is local to its transaction (nothing is left on a pooled server connection);
# each user says why its writes may be committed so.
ASYNC_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
