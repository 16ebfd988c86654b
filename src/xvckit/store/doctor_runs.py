"""`xvckit doctor --save` and `xvckit doctor history`: doctor reports kept in the store."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from xvckit.store.database import Store
from xvckit.store.schema import doctor_runs


def save_run(store: Store, report: dict[str, Any]) -> int:
    """Keep one report (the `--json` document); returns its run id."""
    band = report.get("velocity_band") or {}
    bottleneck = report.get("bottleneck") or {}
    with store.engine.begin() as conn:
        result = conn.execute(
            doctor_runs.insert().values(
                ts=report["started_at"],
                host=report["host"][:255],
                velocity_band=band.get("band"),
                bottleneck=bottleneck.get("id"),
                report=orjson.dumps(report).decode(),
            )
        )
        return int(result.inserted_primary_key[0])


def list_runs(store: Store, limit: int | None = None) -> list[dict[str, Any]]:
    """The latest `limit` reports (None: all), oldest first, each with its run id as `run`."""
    query = sa.select(doctor_runs.c.id, doctor_runs.c.report).order_by(doctor_runs.c.ts.desc()).limit(limit)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [{"run": run_id, **orjson.loads(text)} for run_id, text in reversed(rows)]
