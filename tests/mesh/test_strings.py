"""The walk that refuses NUL characters: every kind of field, reported by its JSON path."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from wealist.noti.v1 import internal_pb2
from wealist.user.v1 import internal_pb2 as user_internal_pb2

from mesh import InvalidField, nul_field
from mesh._strings import refuse_nul


def test_clean_messages_pass() -> None:
    assert nul_field(internal_pb2.CreateNotificationsRequest()) is None
    assert nul_field(timestamp_pb2.Timestamp(seconds=5)) is None
    refuse_nul(object())  # not a message: nothing to check


def test_every_place_a_string_can_be_is_walked() -> None:
    assert nul_field(internal_pb2.NotificationEvent(resource_name="a\x00")) == "resourceName"
    batch = internal_pb2.CreateNotificationsRequest(
        events=[internal_pb2.NotificationEvent(), internal_pb2.NotificationEvent(idempotency_key="\x00")]
    )
    assert nul_field(batch) == "events[1].idempotencyKey"
    ids = user_internal_pb2.GetUsersRequest(user_ids=["a", "b\x00"])
    assert nul_field(ids) == "userIds[1]"
    nested = struct_pb2.Struct()
    nested.update({"k": {"deep": ["x", "y\x00"]}})
    assert nul_field(nested) == "fields['k'].structValue.fields['deep'].listValue.values[1].stringValue"
    keyed = struct_pb2.Struct()
    keyed.update({"bad\x00key": 1})
    assert nul_field(keyed) == "fields['bad\\x00key']"


def test_the_error_names_the_field() -> None:
    with pytest.raises(InvalidField) as refused:
        refuse_nul(internal_pb2.NotificationEvent(type="X\x00"))
    assert (refused.value.field, refused.value.reason) == ("type", "must not contain a NUL character")
