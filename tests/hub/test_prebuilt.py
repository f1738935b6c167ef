"""Statements sent with exec_driver_sql (hub.db.prebuilt.Direct) store what Core would store, and a
database failure still reaches the caller as SQLAlchemy's DBAPIError (the worker retries on it, the
API answers 503 on it)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError

from hub.auth import Principal
from hub.db.models import EVENTS, REQUESTS
from hub.db.prebuilt import Direct, direct_insert, direct_update, update_params
from hub.intake import RequestBody, submit
from tests.conftest import sample

PORTAL = Principal("portal", frozenset({"portal"}))


def filed(hub) -> str:
    body = RequestBody.model_validate(sample("01-lefevre-copie-integrale"))
    return submit(hub, PORTAL, body, None, time.perf_counter()).request_id


def test_an_update_stores_times_in_utc_and_json_as_core_would(hub) -> None:
    request_id = filed(hub)
    paris = datetime(2026, 11, 29, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
    context = {"act_request": {"number": "EC-42", "accents": "Lefèvre"}, "list": [1, 2]}
    statement = direct_update(REQUESTS, ("id",), ("status", "context", "updated_at"))
    with hub.db.connection() as connection:
        changed = statement.execute(
            connection,
            update_params(
                {"id": request_id}, {"status": "submitted", "context": context, "updated_at": paris}
            ),
        )
        assert changed.rowcount == 1
    with hub.db.reading() as connection:
        row = connection.execute(
            select(REQUESTS.c.status, REQUESTS.c.context, REQUESTS.c.updated_at).where(
                REQUESTS.c.id == request_id
            )
        ).one()
    assert row.status == "submitted"
    assert row.context == context
    assert row.updated_at == paris and row.updated_at.tzinfo is not None
    assert row.updated_at.astimezone(UTC) == datetime(2026, 11, 29, 13, 30, 15, 123456, tzinfo=UTC)


def test_an_update_whose_key_matches_nothing_changes_no_row(hub) -> None:
    statement = direct_update(REQUESTS, ("id",), ("status",))
    with hub.db.connection() as connection:
        assert (
            statement.execute(connection, update_params({"id": "no-such-request"}, {"status": "x"})).rowcount
            == 0
        )


def test_many_rows_are_inserted_in_one_call(hub) -> None:
    request_id = filed(hub)
    at = datetime.now(UTC)
    rows = [{"request_id": request_id, "at": at, "step": f"step-{n}", "outcome": "ok"} for n in range(5)]
    with hub.db.connection() as connection:
        direct_insert(EVENTS, ("request_id", "at", "step", "outcome")).executemany(connection, rows)
    with hub.db.reading() as connection:
        steps = connection.execute(
            select(EVENTS.c.step).where(EVENTS.c.request_id == request_id, EVENTS.c.step.like("step-%"))
        ).scalars()
        assert sorted(steps) == [f"step-{n}" for n in range(5)]


def test_a_database_failure_is_a_dbapi_error_and_leaves_nothing(hub) -> None:
    request_id = filed(hub)
    good = {"request_id": request_id, "at": datetime.now(UTC), "step": "kept-out", "outcome": "ok"}
    bad = {"request_id": request_id, "at": datetime.now(UTC), "step": None, "outcome": "ok"}  # NOT NULL
    with pytest.raises(DBAPIError), hub.db.connection() as connection:
        direct_insert(EVENTS, tuple(good)).execute(connection, good)
        direct_insert(EVENTS, tuple(bad)).execute(connection, bad)
    with hub.db.reading() as connection:
        assert connection.execute(select(EVENTS.c.id).where(EVENTS.c.step == "kept-out")).first() is None


def test_a_missing_parameter_is_refused_before_anything_is_sent(hub) -> None:
    statement = direct_update(REQUESTS, ("id",), ("status",))
    with pytest.raises(KeyError, match="v_status"), hub.db.connection() as connection:
        statement.execute(connection, {"k_id": "r"})


def test_an_expanding_parameter_is_refused(hub) -> None:
    statement = Direct(select(REQUESTS.c.id).where(REQUESTS.c.id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(ValueError, match="not a plain statement"), hub.db.reading() as connection:
        statement.execute(connection, {"ids": ["a"]})
