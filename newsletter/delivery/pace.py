"""One pace per campaign, shared by every worker on every machine, kept in the database.

``--rate R`` means R messages a second for the campaign, whatever number of processes send it. The
campaign's ``send_pace`` row holds the next free sending slot as a virtual clock (the generic cell
rate algorithm): a worker reserves ``n`` slots by moving it on by ``n / R`` seconds from
``max(next_at, now)``, in one UPDATE, and sends at the slots it got. Because the clock never lags
behind ``now``, a pause earns no burst afterwards. On PostgreSQL ``now`` is the database server's
clock, so workers on machines whose clocks disagree still share one pace; SQLite has one machine.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, text

_ENSURE = text("INSERT INTO send_pace (campaign_id, next_at) VALUES (:campaign, 0) ON CONFLICT DO NOTHING")
# Both return the delay from now until the first reserved slot, in seconds.
_RESERVE_SQLITE = text(
    "UPDATE send_pace SET next_at = MAX(next_at, :now) + :span WHERE campaign_id = :campaign "
    "RETURNING next_at - :span - :now"
)
_RESERVE_POSTGRESQL = text(
    "UPDATE send_pace SET next_at = GREATEST(next_at, EXTRACT(EPOCH FROM clock_timestamp())::float8) + :span "
    "WHERE campaign_id = :campaign RETURNING next_at - :span - EXTRACT(EPOCH FROM clock_timestamp())::float8"
)


class SharedPace:
    """Reserves sending slots of one campaign at ``rate`` messages a second on connection ``db``.

    Each reservation is its own short transaction on ``db``, which must not be inside another one.
    """

    def __init__(self, db: Connection, campaign_id: int, rate: float) -> None:
        self.db = db
        self.campaign_id = campaign_id
        self.interval = 1.0 / rate
        self._postgresql = db.dialect.name == "postgresql"
        with db.begin():
            db.execute(_ENSURE, {"campaign": campaign_id})

    def reserve(self, count: int) -> list[float]:
        """``count`` consecutive slots, as ``time.monotonic()`` times at which to send."""
        span = count * self.interval
        with self.db.begin():
            if self._postgresql:
                # Losing a reservation in a crash costs nothing but a gap: no need to wait for the disk.
                self.db.execute(text("SET LOCAL synchronous_commit TO OFF"))
                delay = self.db.execute(_RESERVE_POSTGRESQL, {"span": span, "campaign": self.campaign_id}).scalar_one()
            else:
                delay = self.db.execute(
                    _RESERVE_SQLITE, {"now": time.time(), "span": span, "campaign": self.campaign_id}
                ).scalar_one()
        first = time.monotonic() + max(float(delay), 0.0)
        return [first + n * self.interval for n in range(count)]
