"""Sparkplug payload encoding checked against the independent decoder (built from the
spec's field numbers, tests/northbound_decoder.py), the generated protobuf module checked
against protoc, and the tag -> metric type mapping."""

from __future__ import annotations

import ast
import math
import re

import pytest

import northbound_decoder as dec
from smartline.core import Quality
from smartline.northbound.sparkplug import QUALITY_CODE, SpType, StoredSample, _codegen, topic
from smartline.northbound.sparkplug._payload import (
    add_sample,
    cmd_value,
    metric_type,
    node_metric,
    payload,
)
from smartline.northbound.sparkplug.sparkplug_b_pb2 import Payload
from smartline.tags import Access, TagSpec, parse_address


def _descriptor(text: str) -> bytes:
    m = re.search(r"AddSerializedFile\((b'.*?')\)\n", text, re.S)
    assert m is not None
    value = ast.literal_eval(m.group(1))
    assert isinstance(value, bytes)
    return value


def _gencode_version(text: str) -> str:
    m = re.search(r"# Protobuf Python Version: (\S+)", text)
    assert m is not None
    return m.group(1)


def test_generated_module_is_what_protoc_makes_now() -> None:
    """The schema compiled now gives the checked-in descriptor; with the same protoc
    version the whole module and stub are the same text."""
    text, _stub = _codegen.generate()
    checked_in = _codegen.TARGET.read_text(encoding="utf-8")
    assert _descriptor(text) == _descriptor(checked_in), \
        "sparkplug_b_pb2 is stale: python -m smartline.northbound.sparkplug._codegen"
    if _gencode_version(text) == _gencode_version(checked_in):
        assert _codegen.main(["--check"]) == 0


def test_schema_field_numbers_match_the_specification() -> None:
    m = Payload.Metric.DESCRIPTOR.fields_by_name
    numbers = {n: m[n].number for n in ("name", "alias", "timestamp", "datatype",
                                         "is_historical", "is_transient", "is_null",
                                         "metadata", "properties", "int_value", "long_value",
                                         "float_value", "double_value", "boolean_value",
                                         "string_value", "bytes_value")}
    assert numbers == {"name": 1, "alias": 2, "timestamp": 3, "datatype": 4,
                       "is_historical": 5, "is_transient": 6, "is_null": 7, "metadata": 8,
                       "properties": 9, "int_value": 10, "long_value": 11, "float_value": 12,
                       "double_value": 13, "boolean_value": 14, "string_value": 15,
                       "bytes_value": 16}
    p = Payload.DESCRIPTOR.fields_by_name
    assert [p[n].number for n in ("timestamp", "metrics", "seq", "uuid", "body")] == \
        [1, 2, 3, 4, 5]
    assert Payload.DESCRIPTOR.full_name == "org.eclipse.tahu.protobuf.Payload"


@pytest.mark.parametrize(("datatype", "value", "field"), [
    (SpType.INT8, -1, dec.M_INT), (SpType.INT16, -300, dec.M_INT),
    (SpType.INT32, -(2**31), dec.M_INT), (SpType.INT64, -(2**63), dec.M_LONG),
    (SpType.UINT8, 255, dec.M_INT), (SpType.UINT16, 65535, dec.M_INT),
    (SpType.UINT32, 2**32 - 1, dec.M_INT), (SpType.UINT64, 2**64 - 1, dec.M_LONG),
    (SpType.FLOAT, 1.5, dec.M_FLOAT), (SpType.DOUBLE, -2.25e300, dec.M_DOUBLE),
    (SpType.BOOLEAN, True, dec.M_BOOL), (SpType.BOOLEAN, False, dec.M_BOOL),
    (SpType.STRING, "Grüße", dec.M_STRING),
])
def test_values_round_trip_through_the_independent_decoder(datatype: SpType, value: object,
                                                           field: int) -> None:
    p = payload(1_700_000_000_000, 7)
    s = StoredSample("plc", "x", 1_700_000_000_123, value, 192, int(datatype))  # type: ignore[arg-type]
    add_sample(p, s, alias=9, name="x", birth=True, historical=False, quality_property=False)
    got = dec.decode(p.SerializeToString())
    assert got.timestamp == 1_700_000_000_000 and got.seq == 7
    (m,) = got.metrics
    assert (m.name, m.alias, m.timestamp, m.datatype) == ("x", 9, 1_700_000_000_123,
                                                          int(datatype))
    assert m.value_field == field and m.value == value and not m.is_null
    assert not m.properties
    # what a host sends back with either integer field is read as the metric's type
    back = Payload()
    back.ParseFromString(dec.encode([dec.encode_metric(alias=9, datatype=int(datatype),
                                                       value=value)]))
    assert cmd_value(back.metrics[0], int(datatype)) == value


def test_data_metrics_carry_alias_only_and_flags() -> None:
    p = payload(1, 3)
    s = StoredSample("plc", "x", 5, None, QUALITY_CODE[Quality.BAD], int(SpType.DOUBLE))
    add_sample(p, s, alias=4, name=None, birth=False, historical=True, quality_property=True)
    s = StoredSample("plc", "y", 6, 2.5, QUALITY_CODE[Quality.STALE], int(SpType.DOUBLE))
    add_sample(p, s, alias=5, name=None, birth=False, historical=False, quality_property=True)
    a, b = dec.decode(p.SerializeToString()).metrics
    assert (a.name, a.datatype, a.alias, a.is_historical, a.is_null, a.value) == \
        (None, None, 4, True, True, None)
    assert a.properties == {"Quality": 0}
    assert (b.value, b.properties, b.is_historical) == (2.5, {"Quality": 500}, False)


def test_quality_codes() -> None:
    assert QUALITY_CODE == {Quality.GOOD: 192, Quality.UNCERTAIN: 64, Quality.STALE: 500,
                            Quality.BAD: 0}


def test_ndeath_has_no_seq_and_node_metrics_no_alias() -> None:
    p = payload(10, None)
    node_metric(p, "bdSeq", SpType.INT64, 3, 10)
    got = dec.decode(p.SerializeToString())
    assert got.seq is None
    assert (got.metrics[0].name, got.metrics[0].alias, got.metrics[0].datatype,
            got.metrics[0].value) == ("bdSeq", None, 4, 3)


def test_nan_float_and_unrepresentable_values() -> None:
    p = payload(1, 1)
    add_sample(p, StoredSample("d", "t", 1, math.nan, 192, int(SpType.DOUBLE)), alias=1,
               name=None, birth=False, historical=False, quality_property=False)
    add_sample(p, StoredSample("d", "t", 1, "abc", 192, int(SpType.INT32)), alias=2,
               name=None, birth=False, historical=False, quality_property=False)
    a, b = dec.decode(p.SerializeToString()).metrics
    assert math.isnan(a.value)  # type: ignore[arg-type]
    assert b.is_null and b.value is None


def _spec(address: str, **kw: object) -> TagSpec:
    return TagSpec(name="t", device="d", address=parse_address("memory", address),
                   access=Access.R, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("address", "expected"), [
    ("a", SpType.DOUBLE), ("a:float32", SpType.FLOAT), ("a:bool", SpType.BOOLEAN),
    ("a:int8", SpType.INT8), ("a:uint16", SpType.UINT16), ("a:int64", SpType.INT64),
    ("a:uint64", SpType.UINT64), ("a:string<8>", SpType.STRING),
    ("a:float64[4]", None),
])
def test_metric_types(address: str, expected: SpType | None) -> None:
    assert metric_type(_spec(address)) == expected


def test_topics() -> None:
    assert topic("g", "NBIRTH", "n") == "spBv1.0/g/NBIRTH/n"
    assert topic("g", "DDATA", "n", "dev") == "spBv1.0/g/DDATA/n/dev"


def test_scaled_and_untyped_tags() -> None:
    from smartline.tags import Scale

    assert metric_type(_spec("a:int16", scale=Scale(gain=0.1))) == SpType.DOUBLE
