"""Query parameters and path variables into request messages, on a message type built for the test."""

from __future__ import annotations

import math
from typing import Any

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    field_mask_pb2,
    message_factory,
    struct_pb2,
    text_format,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor
from hypothesis import given
from hypothesis import strategies as st

from gateway.query import FieldTarget, apply_query, resolve_field, set_field
from mesh import InvalidField

# Every kind of field a query parameter can meet. Built in a pool of its own, so its Timestamp and
# wrappers are not the generated classes: the setters must fill them in place, not copy ours in.
_PROBE_FILE = """
name: "querytest/probe.proto"
package: "querytest"
syntax: "proto3"
dependency: "google/protobuf/timestamp.proto"
dependency: "google/protobuf/duration.proto"
dependency: "google/protobuf/field_mask.proto"
dependency: "google/protobuf/wrappers.proto"
dependency: "google/protobuf/struct.proto"
enum_type {
  name: "Status"
  value { name: "STATUS_UNSPECIFIED" number: 0 }
  value { name: "STATUS_ACTIVE" number: 1 }
  value { name: "STATUS_ARCHIVED" number: 2 }
}
message_type {
  name: "Item"
  field { name: "name" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL json_name: "name" }
}
message_type {
  name: "Filter"
  field { name: "owner_id" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL json_name: "ownerId" }
  field { name: "tags" number: 2 type: TYPE_STRING label: LABEL_REPEATED json_name: "tags" }
  field { name: "inner" number: 3 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".querytest.Filter.Inner" json_name: "inner" }
  nested_type {
    name: "Inner"
    field { name: "depth" number: 1 type: TYPE_INT64 label: LABEL_OPTIONAL json_name: "depth" }
  }
}
message_type {
  name: "Probe"
  field { name: "name" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL json_name: "name" }
  field { name: "page_size" number: 2 type: TYPE_INT32 label: LABEL_OPTIONAL json_name: "pageSize" }
  field { name: "big" number: 3 type: TYPE_INT64 label: LABEL_OPTIONAL json_name: "big" }
  field { name: "small" number: 4 type: TYPE_UINT32 label: LABEL_OPTIONAL json_name: "small" }
  field { name: "huge" number: 5 type: TYPE_UINT64 label: LABEL_OPTIONAL json_name: "huge" }
  field { name: "s32" number: 6 type: TYPE_SINT32 label: LABEL_OPTIONAL json_name: "s32" }
  field { name: "f64" number: 7 type: TYPE_FIXED64 label: LABEL_OPTIONAL json_name: "f64" }
  field { name: "sf32" number: 8 type: TYPE_SFIXED32 label: LABEL_OPTIONAL json_name: "sf32" }
  field { name: "flag" number: 9 type: TYPE_BOOL label: LABEL_OPTIONAL json_name: "flag" }
  field { name: "ratio" number: 10 type: TYPE_DOUBLE label: LABEL_OPTIONAL json_name: "ratio" }
  field { name: "weight" number: 11 type: TYPE_FLOAT label: LABEL_OPTIONAL json_name: "weight" }
  field { name: "blob" number: 12 type: TYPE_BYTES label: LABEL_OPTIONAL json_name: "blob" }
  field { name: "status" number: 13 type: TYPE_ENUM label: LABEL_OPTIONAL
          type_name: ".querytest.Status" json_name: "status" }
  field { name: "statuses" number: 14 type: TYPE_ENUM label: LABEL_REPEATED
          type_name: ".querytest.Status" json_name: "statuses" }
  field { name: "ids" number: 15 type: TYPE_INT32 label: LABEL_REPEATED json_name: "ids" }
  field { name: "names" number: 16 type: TYPE_STRING label: LABEL_REPEATED json_name: "names" }
  field { name: "limit" number: 17 type: TYPE_INT32 label: LABEL_OPTIONAL json_name: "limit"
          proto3_optional: true oneof_index: 1 }
  field { name: "labels" number: 18 type: TYPE_MESSAGE label: LABEL_REPEATED
          type_name: ".querytest.Probe.LabelsEntry" json_name: "labels" }
  field { name: "filter" number: 19 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".querytest.Filter" json_name: "filter" }
  field { name: "items" number: 20 type: TYPE_MESSAGE label: LABEL_REPEATED
          type_name: ".querytest.Item" json_name: "items" }
  field { name: "since" number: 21 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.Timestamp" json_name: "since" }
  field { name: "timeout" number: 22 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.Duration" json_name: "timeout" }
  field { name: "update_mask" number: 23 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.FieldMask" json_name: "updateMask" }
  field { name: "max_count" number: 24 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.Int64Value" json_name: "maxCount" }
  field { name: "nickname" number: 25 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.StringValue" json_name: "nickname" }
  field { name: "archived" number: 26 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.BoolValue" json_name: "archived" }
  field { name: "score" number: 27 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.DoubleValue" json_name: "score" }
  field { name: "token" number: 28 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.BytesValue" json_name: "token" }
  field { name: "times" number: 29 type: TYPE_MESSAGE label: LABEL_REPEATED
          type_name: ".google.protobuf.Timestamp" json_name: "times" }
  field { name: "by_name" number: 30 type: TYPE_STRING label: LABEL_OPTIONAL
          oneof_index: 0 json_name: "byName" }
  field { name: "by_id" number: 31 type: TYPE_INT32 label: LABEL_OPTIONAL oneof_index: 0 json_name: "byId" }
  field { name: "extra" number: 32 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.Struct" json_name: "extra" }
  field { name: "custom" number: 33 type: TYPE_STRING label: LABEL_OPTIONAL json_name: "customName" }
  field { name: "weights" number: 34 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".google.protobuf.FloatValue" json_name: "weights" }
  field { name: "flags" number: 35 type: TYPE_BOOL label: LABEL_REPEATED json_name: "flags" }
  nested_type {
    name: "LabelsEntry"
    options { map_entry: true }
    field { name: "key" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL json_name: "key" }
    field { name: "value" number: 2 type: TYPE_STRING label: LABEL_OPTIONAL json_name: "value" }
  }
  oneof_decl { name: "choice" }
  oneof_decl { name: "_limit" }
}
"""


def _probe_descriptor() -> Descriptor:
    pool = descriptor_pool.DescriptorPool()
    for module in (timestamp_pb2, duration_pb2, field_mask_pb2, wrappers_pb2, struct_pb2):
        dependency = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(dependency)
        pool.Add(dependency)
    pool.Add(text_format.Parse(_PROBE_FILE, descriptor_pb2.FileDescriptorProto()))
    return pool.FindMessageTypeByName("querytest.Probe")


PROBE = _probe_descriptor()
# Made from a descriptor at run time: its fields are unknown to the type checker.
Probe: Any = message_factory.GetMessageClass(PROBE)


def _query(*params: tuple[str, str], bound: tuple[str, ...] = ()) -> Any:
    """A Probe with ``params`` applied; typed Any since the class is built at run time."""
    message = Probe()
    apply_query(message, params, bound=bound)
    return message


def _error(*params: tuple[str, str]) -> InvalidField:
    with pytest.raises(InvalidField) as caught:
        _query(*params)
    return caught.value


# --- names and paths -------------------------------------------------------------------------------


def test_proto_and_json_names_both_work() -> None:
    assert _query(("page_size", "10")).page_size == 10
    assert _query(("pageSize", "11")).page_size == 11
    assert _query(("custom", "a")).custom == "a"
    assert _query(("customName", "b")).custom == "b"


def test_nested_messages_are_created_along_the_path() -> None:
    for key in ("filter.owner_id", "filter.ownerId"):
        message = _query((key, "u1"))
        assert message.HasField("filter")
        assert message.filter.owner_id == "u1"
    message = _query(("filter.inner.depth", "3"), ("filter.tags", "x"))
    assert message.filter.inner.depth == 3
    assert list(message.filter.tags) == ["x"]


def test_unknown_keys_are_ignored() -> None:
    message = _query(
        ("_", "1700000000"),
        ("cacheBust", "x"),
        ("", "x"),
        (".", "x"),
        ("page_size.", "x"),
        ("name.length", "x"),
        ("filter.nope", "x"),
        ("Name", "x"),
        ("page-size", "x"),
        ("name", "kept"),
    )

    assert message == Probe(name="kept")


def test_bound_fields_are_not_overridden() -> None:
    message: Any = Probe(name="from-path")

    apply_query(message, [("name", "q"), ("pageSize", "5")], bound={"name"})
    assert message.name == "from-path"
    assert message.page_size == 5
    # A bound message covers every field inside it, whichever spelling the key uses.
    assert not _query(("filter.ownerId", "x"), ("filter.owner_id", "y"), bound=("filter",)).HasField("filter")
    # A key naming a message whose field the path binds belongs to the path too: ignored, not refused.
    assert _query(("filter", "x"), bound=("filter.owner_id",)) == Probe()


def test_a_string_goes_in_as_it_is() -> None:
    assert _query(("name", " a,b;c ")).name == " a,b;c "


# --- scalars ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("page_size", "2147483647", 2**31 - 1),
        ("page_size", "-2147483648", -(2**31)),
        ("page_size", "+7", 7),
        ("page_size", "-0", 0),
        ("page_size", "007", 7),
        ("big", "9223372036854775807", 2**63 - 1),
        ("big", "-9223372036854775808", -(2**63)),
        ("small", "4294967295", 2**32 - 1),
        ("huge", "18446744073709551615", 2**64 - 1),
        ("s32", "-5", -5),
        ("f64", "18446744073709551615", 2**64 - 1),
        ("sf32", "-2147483648", -(2**31)),
    ],
)
def test_integers(key: str, value: str, expected: int) -> None:
    assert getattr(_query((key, value)), key) == expected


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("pageSize", "2147483648", "out of range for int32"),
        ("pageSize", "-2147483649", "out of range for int32"),
        ("sf32", "2147483648", "out of range for int32"),
        ("small", "-1", "out of range for uint32"),
        ("small", "4294967296", "out of range for uint32"),
        ("big", "9223372036854775808", "out of range for int64"),
        ("huge", "18446744073709551616", "out of range for uint64"),
        ("huge", "-1", "out of range for uint64"),
        ("big", "1" * 5000, "out of range for int64"),
        ("pageSize", "", "must be an integer"),
        ("pageSize", "12a", "must be an integer"),
        ("pageSize", "1.0", "must be an integer"),
        ("pageSize", "1e3", "must be an integer"),
        ("pageSize", " 1", "must be an integer"),
        ("pageSize", "1_000", "must be an integer"),
        ("pageSize", "\u0663", "must be an integer"),
        ("pageSize", "0x10", "must be an integer"),
    ],
)
def test_bad_integers(key: str, value: str, reason: str) -> None:
    error = _error((key, value))

    assert error.field == key
    assert reason in error.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("false", False), ("1", True), ("0", False), ("TRUE", True), ("False", False)],
)
def test_bools(value: str, expected: bool) -> None:
    assert _query(("flag", value)).flag is expected


@pytest.mark.parametrize("value", ["yes", "", "2", "t", " true"])
def test_bad_bools(value: str) -> None:
    assert _error(("flag", value)).field == "flag"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.5", 1.5),
        ("-2e10", -2e10),
        (".5", 0.5),
        ("3", 3.0),
        ("1E-3", 1e-3),
        ("Infinity", math.inf),
        ("-Infinity", -math.inf),
        ("inf", math.inf),
    ],
)
def test_doubles(value: str, expected: float) -> None:
    assert _query(("ratio", value)).ratio == expected


def test_nan() -> None:
    assert math.isnan(_query(("ratio", "NaN")).ratio)
    assert math.isnan(_query(("weight", "nan")).weight)


@pytest.mark.parametrize("value", ["", "abc", "1_0", " 1", "1,5", "0x1p3", "--1", "1e", "Infinityy"])
def test_bad_doubles(value: str) -> None:
    assert "must be a number" in _error(("ratio", value)).reason


def test_float_range() -> None:
    assert _query(("weight", "1e38")).weight == pytest.approx(1e38, rel=1e-6)
    assert _query(("weight", "-Infinity")).weight == -math.inf
    assert "out of range for float" in _error(("weight", "1e39")).reason
    assert _query(("ratio", "1e39")).ratio == 1e39


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("aGVsbG8/Pz8+", b"hello???>"),
        ("aGVsbG8_Pz8-", b"hello???>"),
        ("aGk=", b"hi"),
        ("aGk", b"hi"),
        ("", b""),
    ],
)
def test_bytes_take_either_base64_alphabet(value: str, expected: bytes) -> None:
    assert _query(("blob", value)).blob == expected


@pytest.mark.parametrize("value", ["a", "***", "aGk=x", "a b", "é"])
def test_bad_bytes(value: str) -> None:
    assert "base64" in _error(("blob", value)).reason


def test_enums_by_name_or_number() -> None:
    assert _query(("status", "STATUS_ACTIVE")).status == 1
    assert _query(("status", "2")).status == 2
    # An open (proto3) enum keeps a number it does not know, as proto3 JSON does.
    assert _query(("status", "99")).status == 99
    assert list(_query(("statuses", "STATUS_ACTIVE"), ("statuses", "0")).statuses) == [1, 0]


@pytest.mark.parametrize("value", ["ACTIVE", "status_active", "", "1.0", "2147483648", "x1"])
def test_bad_enums(value: str) -> None:
    error = _error(("status", value))

    assert error.field == "status"
    assert "querytest.Status" in error.reason


def test_closed_enums_refuse_unknown_numbers() -> None:
    # descriptor.proto is proto2: its enums are closed.
    message = descriptor_pb2.FieldDescriptorProto()
    apply_query(message, [("type", "TYPE_STRING"), ("label", "3"), ("jsonName", "x"), ("type_name", "y")])
    assert message.type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    assert message.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    assert (message.json_name, message.type_name) == ("x", "y")
    with pytest.raises(InvalidField) as caught:
        apply_query(message, [("type", "99")])
    assert caught.value.field == "type"


def test_text_protobuf_cannot_encode_is_refused() -> None:
    error = _error(("name", "a\ud800"))

    assert error.field == "name"


# --- repeated, optional, oneof ---------------------------------------------------------------------


def test_repeated_keys_append() -> None:
    message = _query(("ids", "1"), ("ids", "2"), ("names", "a"), ("names", "b"), ("flags", "true"))

    assert list(message.ids) == [1, 2]
    assert list(message.names) == ["a", "b"]
    assert list(message.flags) == [True]


def test_commas_do_not_split() -> None:
    assert list(_query(("names", "a,b")).names) == ["a,b"]
    assert _error(("ids", "1,2")).field == "ids"


def test_optional_fields_get_presence() -> None:
    message = _query(("limit", "0"))

    assert message.HasField("limit")
    assert not _query().HasField("limit")


def test_one_field_of_a_oneof() -> None:
    assert _query(("byName", "a"), ("byName", "b")).by_name == "b"
    error = _error(("byName", "a"), ("byId", "1"))

    assert error.field == "byId"
    assert "byName" in error.reason


# --- fields no string can set ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("labels", "labels"),
        ("labels.key", "labels.key"),
        ("filter", "filter"),
        ("items", "items"),
        ("items.name", "items.name"),
        ("extra", "extra"),
        ("filter.inner", "filter.inner"),
    ],
)
def test_maps_messages_and_repeated_paths_are_refused(key: str, field: str) -> None:
    error = _error((key, "x"))

    assert error.field == field
    assert "cannot be set from a query parameter" in error.reason


# --- well-known types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds", "nanos"),
    [
        ("2024-01-31T09:30:00Z", 1706693400, 0),
        ("2024-01-31T18:30:00+09:00", 1706693400, 0),
        ("2024-01-31T00:30:00-09:00", 1706693400, 0),
        # "+09:00" unencoded in a query string arrives as " 09:00".
        ("2024-01-31T18:30:00 09:00", 1706693400, 0),
        ("2024-01-31t09:30:00.5z", 1706693400, 500_000_000),
        ("2024-01-31T09:30:00.123456789Z", 1706693400, 123_456_789),
        ("0001-01-01T00:00:00Z", -62135596800, 0),
        ("9999-12-31T23:59:59.999999999Z", 253402300799, 999_999_999),
        ("1969-12-31T23:59:59Z", -1, 0),
    ],
)
def test_timestamps(value: str, seconds: int, nanos: int) -> None:
    since = _query(("since", value)).since

    assert (since.seconds, since.nanos) == (seconds, nanos)


def test_the_epoch_is_a_present_timestamp() -> None:
    message = _query(("since", "1970-01-01T00:00:00Z"))

    assert message.HasField("since")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "2024-01-31",
        "2024-01-31T09:30:00",
        "2024-01-31 09:30:00Z",
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-31T24:00:00Z",
        "2024-01-31T09:60:00Z",
        "2024-01-31T09:30:60Z",
        "2024-01-31T09:30:00.1234567891Z",
        "2024-01-31T09:30:00+24:00",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "10000-01-01T00:00:00Z",
        "2024-01-31T09:30:00 09",
        "2024-01-31T09:30:00Z ",
    ],
)
def test_bad_timestamps(value: str) -> None:
    assert _error(("since", value)).field == "since"


def test_repeated_timestamps_append() -> None:
    message = _query(("times", "1970-01-01T00:00:01Z"), ("times", "1970-01-01T00:00:02Z"))

    assert [t.seconds for t in message.times] == [1, 2]


@pytest.mark.parametrize(
    ("value", "seconds", "nanos"),
    [
        ("1.5s", 1, 500_000_000),
        ("-0.5s", 0, -500_000_000),
        ("-3.000000001s", -3, -1),
        ("0s", 0, 0),
        ("315576000000s", 315576000000, 0),
    ],
)
def test_durations(value: str, seconds: int, nanos: int) -> None:
    message = _query(("timeout", value))

    assert message.HasField("timeout")
    assert (message.timeout.seconds, message.timeout.nanos) == (seconds, nanos)


@pytest.mark.parametrize("value", ["1.5", "s", "1e3s", "1.5 s", "315576000001s", "1.0000000001s", "+1s"])
def test_bad_durations(value: str) -> None:
    assert _error(("timeout", value)).field == "timeout"


def test_field_masks_split_on_commas_and_take_proto_names() -> None:
    message = _query(("updateMask", "name,filter.ownerId,page_size"))

    assert list(message.update_mask.paths) == ["name", "filter.owner_id", "page_size"]
    assert list(_query(("update_mask", "a"), ("update_mask", "b")).update_mask.paths) == ["b"]
    empty = _query(("updateMask", ""))
    assert empty.HasField("update_mask")
    assert list(empty.update_mask.paths) == []


@pytest.mark.parametrize("value", ["a,,b", ",", "a.", "a b", "1a", "a-b"])
def test_bad_field_masks(value: str) -> None:
    assert _error(("updateMask", value)).field == "updateMask"


def test_wrappers_hold_the_scalar_and_have_presence() -> None:
    message = _query(
        ("maxCount", "0"),
        ("nickname", ""),
        ("archived", "false"),
        ("score", "2.5"),
        ("token", "aGk"),
        ("weights", "1.5"),
    )

    for name in ("max_count", "nickname", "archived", "score", "token", "weights"):
        assert message.HasField(name), name
    assert message.max_count.value == 0
    assert message.nickname.value == ""
    assert message.archived.value is False
    assert message.score.value == 2.5
    assert message.token.value == b"hi"
    assert _query(("maxCount", "-5")).max_count.value == -5


def test_bad_wrapped_values() -> None:
    assert "out of range for int64" in _error(("maxCount", "9223372036854775808")).reason
    assert _error(("archived", "maybe")).field == "archived"
    assert _error(("weights", "1e39")).field == "weights"


# --- errors name the field by its JSON path ---------------------------------------------------------


def test_errors_name_the_json_path() -> None:
    assert _error(("filter.inner.depth", "deep")).field == "filter.inner.depth"
    assert _error(("filter.ownerId", "x"), ("filter.inner.depth", "deep")).field == "filter.inner.depth"
    error = _error(("page_size", "x"))
    assert error.field == "pageSize"
    assert str(error) == "pageSize: must be an integer"


# --- set_field and resolve_field -------------------------------------------------------------------


def test_set_field_sets_path_variables() -> None:
    message: Any = Probe()

    set_field(message, "filter.owner_id", "u/1")
    set_field(message, "pageSize", "20")
    set_field(message, "ids", "3")

    assert message.filter.owner_id == "u/1"
    assert message.page_size == 20
    assert list(message.ids) == [3]


def test_set_field_errors() -> None:
    with pytest.raises(InvalidField) as caught:
        set_field(Probe(), "page_size", "x")
    assert caught.value.field == "pageSize"
    with pytest.raises(InvalidField):
        set_field(Probe(), "labels", "x")
    with pytest.raises(KeyError, match="no_such_field"):
        set_field(Probe(), "no_such_field", "x")


def test_resolve_field_is_cached_and_canonical() -> None:
    target = resolve_field(PROBE, "filter.ownerId")

    assert isinstance(target, FieldTarget)
    assert (target.proto_path, target.json_path, target.error) == ("filter.owner_id", "filter.ownerId", None)
    assert target.ancestors == ("filter", "filter.owner_id")
    assert target.descriptor.name == "owner_id"
    assert resolve_field(PROBE, "filter.ownerId") is target
    assert resolve_field(PROBE, "nothing") is None
    refused = resolve_field(PROBE, "labels")
    assert refused is not None
    assert refused.error is not None


def test_target_set() -> None:
    message: Any = Probe()
    target = resolve_field(PROBE, "filter.tags")
    assert target is not None

    target.set(message, "x")

    assert list(message.filter.tags) == ["x"]


# --- fuzzing ---------------------------------------------------------------------------------------

_KEYS = [
    *(f.name for f in PROBE.fields),
    *(f.json_name for f in PROBE.fields),
    "filter.owner_id",
    "filter.inner.depth",
    "filter.tags",
    "items.name",
    "labels.key",
    "since.seconds",
    "maxCount.value",
]
_VALUES = ["", "0", "-1", "1.5", "true", "NaN", "aGk", "STATUS_ACTIVE", "1s", "a,b", "\ud800", "%", "2" * 30]


@given(
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(_KEYS), st.text(max_size=12)),
            st.one_of(st.sampled_from(_VALUES), st.text(max_size=20)),
        ),
        max_size=6,
    ),
    st.sets(st.sampled_from(["name", "filter", "since", "page_size"]), max_size=2),
)
def test_only_invalid_field_escapes(params: list[tuple[str, str]], bound: set[str]) -> None:
    message = Probe()
    try:
        apply_query(message, params, bound=bound)
    except InvalidField as error:
        field, reason = error.field, error.reason
    else:
        message.SerializeToString()  # whatever was set makes a valid message
        return
    assert reason
    assert field.split(".")[0] in {f.json_name for f in PROBE.fields}
