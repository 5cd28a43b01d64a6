"""Every date-time the admin shows, Django's own fields included, as core.display.when writes it.

`2026-12-04 14:05:21 UTC`: ISO 8601's date, a 24-hour clock to the second, the zone named
(the admin runs in UTC: settings.TIME_ZONE).
"""

from __future__ import annotations

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = DATE_FORMAT
