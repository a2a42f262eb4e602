"""ISO 8601 formatting and parsing of the sandbox's UTC times (epoch seconds/ms)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

EPOCH_DATE = date(1970, 1, 1)


def iso_s(epoch_s: int) -> str:
    """`2026-03-02T14:05:00Z` for epoch seconds."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(epoch_ms: int) -> str:
    """`2026-03-02T14:05:00.123Z` (the CRM's style) for epoch milliseconds."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{epoch_ms % 1000:03d}Z"


def iso_s_array(epoch_s: np.ndarray) -> list[str]:
    """Vectorised `iso_s` for an int64 array."""
    text = np.datetime_as_string(epoch_s.astype("datetime64[s]"), unit="s")
    return [value + "Z" for value in text.tolist()]


def date_array(epoch_days: np.ndarray) -> list[str]:
    """`YYYY-MM-DD` strings for an array of days since 1970-01-01."""
    return np.datetime_as_string(epoch_days.astype("datetime64[D]"), unit="D").tolist()


def day_number(day: date) -> int:
    return (day - EPOCH_DATE).days


def day_of(number: int) -> date:
    return EPOCH_DATE + timedelta(days=int(number))


def epoch_s(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp()) if moment.tzinfo is None else int(
        moment.timestamp()
    )


def at(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch seconds of a UTC wall time on a date."""
    return day_number(day) * 86400 + hour * 3600 + minute * 60 + second


def parse_time(text: str) -> int:
    """Epoch seconds of an ISO 8601 time or date (naive = UTC). Raises ValueError."""
    text = text.strip()
    if len(text) == 10:
        return at(date.fromisoformat(text))
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
