"""The driver's document handling without a network: stream framing under any chunking,
the XML parser's namespaces, error documents old and new, refusals, timestamps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartline.core import ProtocolError
from smartline.drivers.cnc.mtconnect._multipart import PartSplitter, boundary_of
from smartline.drivers.cnc.mtconnect._xml import (
    DeviceModel,
    ErrorDoc,
    StreamsDoc,
    parse_document,
    timestamp_ns,
)

BOUNDARY = "a1b2c3"


def part(body: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-type: text/xml\r\nContent-length: {len(body)}\r\n\r\n"
            .encode() + body + b"\r\n")


@settings(max_examples=60, deadline=None)
@given(bodies=st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=6),
       cuts=st.lists(st.integers(1, 50), min_size=1, max_size=40))
def test_parts_come_out_whole_however_the_stream_is_cut(bodies, cuts) -> None:
    stream = b"".join(part(b) for b in bodies)
    splitter = PartSplitter(BOUNDARY, 10_000)
    out: list[bytes] = []
    pos, k = 0, 0
    while pos < len(stream):
        n = cuts[k % len(cuts)]
        out += splitter.feed(stream[pos:pos + n])
        pos += n
        k += 1
    assert out == bodies


def test_framing_errors_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="more than max_document_bytes"):
        PartSplitter(BOUNDARY, 10).feed(part(b"x" * 11))
    with pytest.raises(ProtocolError, match="without Content-length"):
        PartSplitter(BOUNDARY, 10).feed(f"--{BOUNDARY}\r\nContent-type: x\r\n\r\n".encode())
    with pytest.raises(ProtocolError, match="without a part boundary"):
        PartSplitter(BOUNDARY, 10).feed(b"y" * 10_000)
    assert boundary_of("multipart/x-mixed-replace;boundary=abc") == "abc"
    assert boundary_of('multipart/mixed; boundary="q-1"') == "q-1"
    assert boundary_of("text/xml") is None


STREAMS = """<?xml version="1.0" encoding="UTF-8"?>
<MTConnectStreams xmlns="{ns}">
 <Header creationTime="2010-04-06T06:19:35Z" sender="a" instanceId="7" version="{v}"
   bufferSize="131072" nextSequence="12" firstSequence="1" lastSequence="11"/>
 <Streams><DeviceStream name="M" uuid="u"><ComponentStream component="Path" componentId="p">
  <Samples><PathFeedrate dataItemId="f" timestamp="2010-04-06T06:19:35.153141Z"
    sequence="10">UNAVAILABLE</PathFeedrate></Samples>
  <Events><Execution dataItemId="e" timestamp="2010-04-06T06:19:35Z" sequence="11">
    ACTIVE</Execution></Events>
  <Condition><Fault dataItemId="c" timestamp="2010-04-06T06:19:35Z" sequence="9"
    nativeCode="E1" qualifier="HIGH" type="SYSTEM">Servo</Fault></Condition>
 </ComponentStream></DeviceStream></Streams></MTConnectStreams>"""


@pytest.mark.parametrize(("ns", "v"), [
    ("urn:mtconnect.com:MTConnectStreams:1.1", "1.1"),
    ("urn:mtconnect.org:MTConnectStreams:1.3", "1.3.0.0"),
    ("urn:mtconnect.org:MTConnectStreams:2.7", "2.7.0.0"),
])
def test_streams_in_every_namespace(ns, v) -> None:
    doc = parse_document(STREAMS.format(ns=ns, v=v).encode(), "current")
    assert isinstance(doc, StreamsDoc)
    assert doc.header.next_sequence == 12 and doc.header.instance_id == "7"
    obs = {o.item_id: o for o in doc.observations}
    assert obs["f"].value == "UNAVAILABLE" and obs["f"].category == "SAMPLE"
    assert obs["e"].value == "ACTIVE" and obs["e"].element == "Execution"
    assert obs["c"].element == "Fault" and obs["c"].native_code == "E1"
    assert obs["c"].qualifier == "HIGH" and obs["c"].value == "Servo"


def test_a_foreign_namespace_or_root_is_refused() -> None:
    with pytest.raises(ProtocolError, match="namespace"):
        parse_document(STREAMS.format(ns="urn:example:x", v="1").encode(), "current")
    with pytest.raises(ProtocolError, match="<html> document"):
        parse_document(b"<html><Header instanceId='1'/></html>", "current")
    with pytest.raises(ProtocolError, match="no Header"):
        parse_document(b"<MTConnectStreams/>", "current")


def test_error_documents_old_and_new() -> None:
    old = parse_document(b"""<MTConnectError xmlns="urn:mtconnect.org:MTConnectError:1.3">
      <Header instanceId="1"/><Errors><Error errorCode="OUT_OF_RANGE">'from' must be
      greater than 5</Error><Error errorCode="INVALID_XPATH">bad</Error></Errors>
      </MTConnectError>""", "sample")
    assert isinstance(old, ErrorDoc) and old.has("OUT_OF_RANGE") and old.has("INVALID_XPATH")
    new = parse_document(b"""<MTConnectError xmlns="urn:mtconnect.org:MTConnectError:2.6">
      <Header instanceId="1"/><Errors><OutOfRange><ErrorMessage>'from' must be greater than
      5</ErrorMessage><QueryParameter name="from"><Value>1</Value><Minimum>6</Minimum>
      </QueryParameter></OutOfRange><InvalidXPath><ErrorMessage>x</ErrorMessage>
      </InvalidXPath></Errors></MTConnectError>""", "sample")
    assert isinstance(new, ErrorDoc) and new.has("OUT_OF_RANGE")
    assert new.has("INVALID_XPATH")


def test_the_probe_walks_nested_components() -> None:
    doc = parse_document(b"""<MTConnectDevices xmlns="urn:mtconnect.org:MTConnectDevices:2.0">
      <Header instanceId="3" deviceModelChangeTime="2024-01-01T00:00:00Z"/><Devices>
      <Device id="d" name="M" uuid="u"><DataItems><DataItem id="av" type="AVAILABILITY"
      category="EVENT"/></DataItems><Components><Axes id="a"><Components><Linear id="x"
      name="X"><DataItems><DataItem id="xp" name="Xact" type="POSITION" category="SAMPLE"
      subType="ACTUAL" units="MILLIMETER"/></DataItems></Linear></Components></Axes>
      </Components></Device></Devices></MTConnectDevices>""", "probe")
    assert isinstance(doc, DeviceModel)
    assert doc.header.model_change_time == "2024-01-01T00:00:00Z"
    xp = doc.items["xp"]
    assert (xp.name, xp.category, xp.units, xp.component) == (
        "Xact", "SAMPLE", "MILLIMETER", "Axes[a]/Linear[X]")
    assert doc.items["av"].component == "Device" and doc.by_name["Xact"] == [xp]


@pytest.mark.parametrize("doc", [
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><MTConnectStreams>&a;'
    b'</MTConnectStreams>',
    b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://example.com/x.dtd"><MTConnectStreams/>',
])
def test_any_dtd_is_refused_unexpanded(doc) -> None:
    with pytest.raises(ProtocolError, match="DTD"):
        parse_document(doc, "current")


def test_timestamps() -> None:
    assert timestamp_ns("1970-01-01T00:00:01.000001Z") == 1_000_001_000
    assert timestamp_ns("2010-04-06T06:19:35.1531415Z") == 1_270_534_775_153_141_000
    assert timestamp_ns("1970-01-01T00:00:02") == 2_000_000_000
    assert timestamp_ns("yesterday") is None


def test_a_dtd_after_the_root_or_in_utf16_is_refused_too() -> None:
    with pytest.raises(ProtocolError):
        parse_document(b'<MTConnectStreams><!DOCTYPE x [<!ENTITY a "b">]></MTConnectStreams>',
                       "current")
    doc = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'
    with pytest.raises(ProtocolError, match="DTD"):
        parse_document(doc.encode("utf-16"), "current")
