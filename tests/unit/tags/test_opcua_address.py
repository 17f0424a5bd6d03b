"""OPC UA NodeId strings (OPC 10000-6 §5.3.1.10/11), validated and canonicalised."""

import pytest

from smartline.tags import AddressError, OpcUaAddress, parse_address
from smartline.tags import parse_opcua as parse


@pytest.mark.parametrize(("text", "ns", "uri", "kind", "ident", "canonical"), [
    ("ns=2;s=Line.Temp", 2, None, "s", "Line.Temp", "ns=2;s=Line.Temp"),
    ("ns=2;i=1001", 2, None, "i", "1001", "ns=2;i=1001"),
    ("i=85", 0, None, "i", "85", "i=85"),
    ("ns=0;i=85", 0, None, "i", "85", "i=85"),
    ("ns=02;i=0085", 2, None, "i", "85", "ns=2;i=85"),
    ("ns=2;i=4294967295", 2, None, "i", "4294967295", "ns=2;i=4294967295"),
    ("ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a", 1, None, "g",
     "09087e75-8e5e-499b-954f-f2a9603db28a", "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a"),
    ("ns=3;g={C496578A-0DFE-4B8F-870A-745238C6AEAE}", 3, None, "g",
     "c496578a-0dfe-4b8f-870a-745238c6aeae", "ns=3;g=c496578a-0dfe-4b8f-870a-745238c6aeae"),
    ("ns=1;b=M/RbKBsRVkePCePcx24oRA==", 1, None, "b", "M/RbKBsRVkePCePcx24oRA==",
     "ns=1;b=M/RbKBsRVkePCePcx24oRA=="),
    ("ns=4;b=QR==", 4, None, "b", "QQ==", "ns=4;b=QQ=="),  # unused bits canonicalised
    ("nsu=urn:x;s=Temp", None, "urn:x", "s", "Temp", "nsu=urn:x;s=Temp"),
    ("nsu=http://example.com/a%3Bb;i=5", None, "http://example.com/a;b", "i", "5",
     "nsu=http://example.com/a%3Bb;i=5"),
    ("nsu=urn:100%25;s=x", None, "urn:100%", "s", "x", "nsu=urn:100%25;s=x"),
    ("nsu=urn:%41;s=x", None, "urn:A", "s", "x", "nsu=urn:A;s=x"),
    ("ns=2;s=Hello:World;with=semicolons", 2, None, "s", "Hello:World;with=semicolons",
     "ns=2;s=Hello:World;with=semicolons"),
    ("ns=2;s= spaced name ", 2, None, "s", " spaced name ", "ns=2;s= spaced name "),
    ("ns=2;s=Ünïcødé 温度", 2, None, "s", "Ünïcødé 温度", "ns=2;s=Ünïcødé 温度"),
    ("s=Root", 0, None, "s", "Root", "s=Root"),
])
def test_forms_and_canonical(text, ns, uri, kind, ident, canonical):
    a = parse(text)
    assert (a.namespace, a.namespace_uri, a.kind, a.identifier) == (ns, uri, kind, ident)
    assert a.canonical() == canonical
    assert parse(canonical) == a
    assert (a.family, a.elements, a.is_text) == ("opcua", 1, False)
    assert parse_address("opcua", text) == a


@pytest.mark.parametrize(("text", "message", "column"), [
    ("", "unknown identifier '': expected i=, s=, g= or b= (like ns=2;s=Line.Temp, ns=2;i=1001, "
         "i=85, nsu=urn:x;s=Temp) in ''", 0),
    ("Line.Temp", "unknown identifier 'Line.Temp': expected i=, s=, g= or b= (like "
                  "ns=2;s=Line.Temp, ns=2;i=1001, i=85, nsu=urn:x;s=Temp) in 'Line.Temp'", 0),
    ("ns=2", "missing ';' and identifier after 'ns=2': expected ns=...;TYPE=VALUE like "
             "ns=2;s=Line.Temp, ns=2;i=1001, i=85, nsu=urn:x;s=Temp in 'ns=2'", 4),
    ("ns=x;i=1", "namespace index 'x' is not a number: expected 0..65535 in 'ns=x;i=1'", 3),
    ("ns=65536;i=1", "namespace index 65536 out of range: expected 0..65535 "
                     "in 'ns=65536;i=1'", 0),
    ("ns=2;x=1", "unknown identifier 'x': expected i=, s=, g= or b= (like ns=2;s=Line.Temp, "
                 "ns=2;i=1001, i=85, nsu=urn:x;s=Temp) in 'ns=2;x=1'", 5),
    ("ns=2;i=-1", "numeric identifier '-1' is not a number: expected 0..4294967295 "
                  "in 'ns=2;i=-1'", 7),
    ("ns=2;i=4294967296", "numeric identifier 4294967296 out of range: expected 0..4294967295 "
                          "(UInt32) in 'ns=2;i=4294967296'", 7),
    ("i=0", "i=0 in namespace 0 is the null NodeId, which names no node in 'i=0'", 2),
    ("g=00000000-0000-0000-0000-000000000000", "the all-zero GUID in namespace 0 is the null "
     "NodeId, which names no node in 'g=00000000-0000-0000-0000-000000000000'", 2),
    ("ns=2;s=", "empty string identifier: expected s=<name> in 'ns=2;s='", 7),
    ("ns=2;s=a\nb", "string identifier contains the control character '\\n' at 1: expected "
                    "printable text in 'ns=2;s=a\\nb'", 7),
    ("ns=2;s=a\x85b", "string identifier contains the control character '\\x85' at 1: expected "
                      "printable text in 'ns=2;s=a\\x85b'", 7),
    ("ns=1;g=09087e75-8e5e-499b-954f", "GUID '09087e75-8e5e-499b-954f' is malformed: expected "
     "8-4-4-4-12 hex digits like 09087e75-8e5e-499b-954f-f2a9603db28a "
     "in 'ns=1;g=09087e75-8e5e-499b-954f'", 7),
    ("ns=1;g={09087e75-8e5e-499b-954f-f2a9603db28a", "GUID '{09087e75-8e5e-499b-954f-f2a9603db28a'"
     " is malformed: expected 8-4-4-4-12 hex digits like 09087e75-8e5e-499b-954f-f2a9603db28a "
     "in 'ns=1;g={09087e75-8e5e-499b-954f-f2a9603db28a'", 7),
    ("ns=1;b=abc", "opaque identifier 'abc' is not valid base64: expected standard base64 with "
                   "padding like M/RbKBsRVkePCePcx24oRA== in 'ns=1;b=abc'", 7),
    ("ns=1;b=a-_b", "opaque identifier 'a-_b' is not valid base64: expected standard base64 with "
                    "padding like M/RbKBsRVkePCePcx24oRA== in 'ns=1;b=a-_b'", 7),
    ("ns=1;b=", "empty opaque identifier: expected b=<base64 of 1 or more bytes> in 'ns=1;b='",
     7),
    ("nsu=;s=x", "empty namespace URI: expected nsu=<uri>; in 'nsu=;s=x'", 0),
    ("nsu=urn:%zz;s=x", "namespace URI 'urn:%zz' has a '%' that does not start a %XX escape "
                        "in 'nsu=urn:%zz;s=x'", 4),
    ("nsu=urn:%ff;s=x", "namespace URI 'urn:%ff' has %XX escapes that are not UTF-8 "
                        "in 'nsu=urn:%ff;s=x'", 4),
    ("ns=1;nsu=urn:x;s=y", "second namespace 'nsu=urn:x': expected one ns= or nsu= "
                           "in 'ns=1;nsu=urn:x;s=y'", 5),
    ("svr=1;ns=1;i=1", "server index (svr=) is not supported: expected a node of the connected "
                       "server like ns=2;s=Line.Temp, ns=2;i=1001, i=85, nsu=urn:x;s=Temp "
                       "in 'svr=1;ns=1;i=1'", 0),
])
def test_errors_name_what_was_found_and_expected(text, message, column):
    with pytest.raises(AddressError) as info:
        parse(text)
    assert str(info.value) == message
    assert info.value.column == column


def test_string_identifier_length_limit():
    assert parse("ns=1;s=" + "x" * 4096).identifier == "x" * 4096
    with pytest.raises(AddressError, match="string identifier is 4097 characters long: expected "
                                           "at most 4096"):
        parse("ns=1;s=" + "x" * 4097)


def test_null_values_are_only_null_in_namespace_0():
    assert parse("ns=1;i=0").identifier == "0"
    assert parse("ns=1;g=00000000-0000-0000-0000-000000000000").kind == "g"


def test_direct_construction_is_checked_and_canonicalised():
    a = OpcUaAddress(2, None, "g", "{C496578A-0DFE-4B8F-870A-745238C6AEAE}")
    assert a.identifier == "c496578a-0dfe-4b8f-870a-745238c6aeae"
    assert a == parse("ns=2;g=c496578a-0dfe-4b8f-870a-745238c6aeae")
    with pytest.raises(AddressError, match="exactly one of a namespace index"):
        OpcUaAddress(2, "urn:x", "s", "a")
    with pytest.raises(AddressError, match="exactly one of a namespace index"):
        OpcUaAddress(None, None, "s", "a")
    with pytest.raises(AddressError, match="unknown identifier type 'q'"):
        OpcUaAddress(1, None, "q", "a")  # type: ignore[arg-type]
