"""Trace retention: a TTL index on createdAt that follows TRACE_RETENTION_DAYS."""

import pytest
from django.db import connection
from django.test import override_settings

from tracing.services import TTL_INDEX_NAME, prediction_trace_retention_apply

pytestmark = pytest.mark.django_db


def ttl_index() -> dict[str, object]:
    info: dict[str, dict[str, object]] = connection.get_collection("prediction_traces").index_information()  # type: ignore[attr-defined]
    return info[TTL_INDEX_NAME]


def test_migrate_leaves_a_30_day_ttl_index_by_default() -> None:
    assert ttl_index()["expireAfterSeconds"] == 30 * 86400


def test_changing_the_setting_changes_the_index_in_place() -> None:
    with override_settings(TRACE_RETENTION_DAYS=7):
        assert prediction_trace_retention_apply() == 7 * 86400
    assert ttl_index()["expireAfterSeconds"] == 7 * 86400
    with override_settings(TRACE_RETENTION_DAYS=0):
        assert prediction_trace_retention_apply() is None
    assert "expireAfterSeconds" not in ttl_index()
    assert prediction_trace_retention_apply() == 30 * 86400
    assert ttl_index()["expireAfterSeconds"] == 30 * 86400
