"""The table a write job inserts into (bench/write_drain.py): an app of the bench settings only."""
