"""Identity from scanned codes: GS1 element strings, HRI, Digital Link, AIM ids, handles."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartline.tags.identity import (
    APPLICATION_IDENTIFIERS,
    GS,
    SCAN_FIELDS,
    AimId,
    AiSpec,
    GS1Data,
    GS1Element,
    Handle,
    gs1_check_digit,
    is_scan_field,
    parse_aim,
    parse_gs1,
    parse_handle,
    scan_fields,
)

TODAY = dt.date(2026, 11, 29)

# --- the research text's examples (device-protocols.md §3, §4) ---------------------------------


def test_research_gs1_128_example():
    fields = scan_fields("]C10109501101530003172612311012AB\x1d2199", today=TODAY)
    assert fields == {
        "symbology": "]C1", "symbology_name": "GS1-128",
        "data": "0109501101530003172612311012AB\x1d2199",
        "ai.01": "09501101530003", "ai.17": "2026-12-31", "ai.10": "12AB", "ai.21": "99",
        "gtin": "09501101530003", "expiry": "2026-12-31", "batch": "12AB", "serial": "99",
    }


def test_research_check_digits():
    assert gs1_check_digit("950110153100") == 0
    assert gs1_check_digit("9501234") == 6
    assert gs1_check_digit("0950110153000") == 3  # the GTIN of the example above
    assert gs1_check_digit("37610425002123456") == 9  # SSCC 376104250021234569


def test_research_day_zero_leap_february():
    assert parse_gs1("11240200", today=TODAY).elements[0].value == dt.date(2024, 2, 29)


def test_research_handle_examples():
    for text, prefix, suffix in [
        ("88.608.24061301/App_scxt0716", "88.608.24061301", "App_scxt0716"),
        ("88.1000.2/mm", "88.1000.2", "mm"),
        ("88.888.3/20220121", "88.888.3", "20220121"),
        ("88.1000.1/ADMIN", "88.1000.1", "ADMIN"),
    ]:
        assert parse_handle(text) == Handle(prefix, suffix)
        assert str(parse_handle(text)) == text


def test_check_digit_rejects_non_digits():
    for bad in ("", "12a4", "１２３"):  # the last one: full-width digits are not ASCII digits
        with pytest.raises(ValueError, match="not a string of digits"):
            gs1_check_digit(bad)


# --- dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("261200", dt.date(2026, 12, 31)),   # December
    ("240200", dt.date(2024, 2, 29)),    # February, leap year
    ("250200", dt.date(2025, 2, 28)),    # February, common year
    ("260400", dt.date(2026, 4, 30)),
    ("261231", dt.date(2026, 12, 31)),
    ("240229", dt.date(2024, 2, 29)),
])
def test_day_zero_is_last_day_of_month(raw: str, expected: dt.date):
    assert parse_gs1(f"17{raw}", today=TODAY).elements[0].value == expected


def test_day_zero_in_2100_is_not_a_leap_year():
    assert parse_gs1("15000200", today=dt.date(2090, 6, 1)).elements[0].value == dt.date(
        2100, 2, 28)


@pytest.mark.parametrize(("today", "yy", "year"), [
    (dt.date(2026, 1, 1), "26", 2026),
    (dt.date(2026, 1, 1), "76", 2076),   # +50: still this century
    (dt.date(2026, 1, 1), "77", 1977),   # +51: previous century
    (dt.date(2026, 1, 1), "99", 1999),
    (dt.date(2026, 1, 1), "00", 2000),
    (dt.date(2080, 1, 1), "31", 2031),   # −49: this century
    (dt.date(2080, 1, 1), "30", 2130),   # −50: next century
    (dt.date(2080, 1, 1), "05", 2105),
    (dt.date(2000, 1, 1), "50", 2050),
    (dt.date(2000, 1, 1), "51", 1951),
    (dt.date(1999, 1, 1), "00", 2000),   # −99: next century
    (dt.date(1999, 1, 1), "48", 2048),   # −51: next century
    (dt.date(1999, 1, 1), "49", 2049),   # −50: next century
    (dt.date(1999, 1, 1), "50", 1950),   # −49: this century
])
def test_century_window(today: dt.date, yy: str, year: int):
    assert parse_gs1(f"11{yy}0615", today=today).elements[0].value == dt.date(year, 6, 15)


def test_default_today_is_the_current_date():
    yy = dt.date.today().year % 100
    element = parse_gs1(f"17{yy:02d}0101").elements[0]
    assert element.value == dt.date(dt.date.today().year, 1, 1)


def test_date_time_and_plain_date_ais():
    data = parse_gs1("01095011015300037003261231235910AB", today=TODAY)
    assert data.get("7003") is not None
    assert data.get("7003").value == dt.datetime(2026, 12, 31, 23, 59)  # type: ignore[union-attr]
    fields = scan_fields("]C170032612312359\x1d7006260115", today=TODAY)
    assert fields["ai.7003"] == "2026-12-31T23:59"
    assert fields["ai.7006"] == "2026-01-15"
    with pytest.raises(ValueError, match=r"AI 7006: '260100' is not a date \(day 00"):
        parse_gs1("7006260100", today=TODAY)  # yymmdd: no day 00 here
    with pytest.raises(ValueError, match="AI 7003: '2612312460' is not a time of day"):
        parse_gs1("70032612312460", today=TODAY)


# --- element strings -----------------------------------------------------------------------------


def test_variable_length_last_element_needs_no_gs():
    data = parse_gs1("010950110153000321ABC-123/x", today=TODAY)
    assert [(e.ai, e.raw) for e in data] == [("01", "09501101530003"), ("21", "ABC-123/x")]


def test_gs_after_predefined_length_element_is_tolerated():
    data = parse_gs1(f"0109501101530003{GS}17261231{GS}10AB{GS}", today=TODAY)
    assert [e.ai for e in data] == ["01", "17", "10"]
    assert parse_gs1(f"{GS}0109501101530003", today=TODAY).elements[0].raw == "09501101530003"


def test_fixed_length_non_predefined_element_without_gs_is_walked_by_length():
    data = parse_gs1("70032612311200" "10LOT7", today=TODAY)
    assert [(e.ai, e.raw) for e in data] == [("7003", "2612311200"), ("10", "LOT7")]


def test_measures_apply_the_decimal_point():
    data = parse_gs1("0109501101530003310300125032021234563922995", today=TODAY)
    values = {e.ai: e.value for e in data}
    assert values["3103"] == Decimal("1.250")
    assert str(values["3103"]) == "1.250"
    assert values["3202"] == Decimal("1234.56")
    assert values["3922"] == Decimal("9.95")
    fields = scan_fields("]C101095011015300033103001250", today=TODAY)
    assert fields["ai.3103"] == "1.250"
    assert fields["net_weight_kg"] == "1.250"
    assert scan_fields("]C13100000042", today=TODAY)["net_weight_kg"] == "42"
    assert scan_fields("]C13105000042", today=TODAY)["net_weight_kg"] == "0.00042"


def test_counts_order_sscc_and_other_named_fields():
    fields = scan_fields(f"]C100376104250021234569{GS}0209501101530003370012{GS}400PO-77",
                         today=TODAY)
    assert fields["sscc"] == "376104250021234569"
    assert fields["ai.02"] == "09501101530003"
    assert "gtin" not in fields  # AI 02 is the GTIN of the contents, not of this unit
    assert fields["ai.37"] == "0012"
    assert fields["count"] == "12"
    assert fields["order"] == "PO-77"
    fields = scan_fields("]C1010950110153000311261001132611011526111030000005", today=TODAY)
    assert (fields["prod_date"], fields["pack_date"], fields["best_before"]) == (
        "2026-10-01", "2026-11-01", "2026-11-10")
    assert fields["count"] == "5"
    element = parse_gs1("305", today=TODAY).elements[0]
    assert (element.value, element.raw) == (5, "5")


def test_element_titles_and_text():
    data = parse_gs1("0109501101530003172612311012AB", today=TODAY)
    assert [e.title for e in data] == ["GTIN", "USE BY or EXPIRY", "BATCH/LOT"]
    assert data.elements[1] == GS1Element("17", "USE BY or EXPIRY", "261231",
                                          dt.date(2026, 12, 31))
    assert data.elements[1].text == "2026-12-31"
    assert data.hri() == "(01)09501101530003(17)261231(10)12AB"
    assert len(data) == 3
    assert data.get("21") is None
    assert data.form == "element string"


def test_optional_and_multi_component_ais():
    data = parse_gs1(f"2530614141000418ABC{GS}4212761234{GS}4330012345-{GS}800309501101530003XY1",
                     today=TODAY)
    assert [(e.ai, e.raw) for e in data] == [
        ("253", "0614141000418ABC"), ("421", "2761234"), ("4330", "012345-"),
        ("8003", "09501101530003XY1")]
    assert parse_gs1("2530614141000418", today=TODAY).elements[0].raw == "0614141000418"


def test_repeated_ai_must_agree():
    data = parse_gs1(f"10AB{GS}10AB", today=TODAY)
    assert [e.raw for e in data] == ["AB", "AB"]
    with pytest.raises(ValueError, match="AI 10 appears twice with different data: 'AB' and 'CD'"):
        parse_gs1(f"10AB{GS}10CD", today=TODAY)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ("]C10109501101530004",
     r"GTIN 09501101530004: check digit 4, expected 3 \(AI 01\), at position 0"),
    ("]d217261331", r"AI 17: '261331' is not a date \(month 13\), at position 0"),
    ("]Q31726123210AB", r"AI 17: '261232' is not a date \(day 32, 2026-12 has 31 days\)"),
    ("]e017250229", r"day 29, 2025-02 has 28 days"),
    ("]J1010950110153000323AB",
     "unknown application identifier at position 16: '23AB'"),
    ("]C1010950110153000398AB\x1dXY12345",
     "unknown application identifier at position 21: 'XY12…'"),
    ("]C110" + "A" * 21, "AI 10: 21 characters, at most 20, at position 0"),
    ("]C1010950110153000317261", "AI 17: 3 characters, expected 6, at position 16"),
    ("]C11726\x1d10AB", "AI 17: 2 characters, expected 6, at position 0"),
    ("]C110AB CD", r"AI 10: 'AB CD' has ' ', not in GS1 set 82 \(offset 2\)"),
    ("]C101095011015300A3", r"AI 01: '095011015300A3' has 'A', not in digits"),
    ("]C110", "AI 10: no data, at least 1, at position 0"),
    ("]C1", "GS1 data is empty"),
    ("]C1\x1d", "GS1 data is empty"),
    ("]C10", "unknown application identifier at position 0: '0'"),
    ("(01)09501101530004", "GTIN 09501101530004: check digit 4"),
    ("(17)261331", r"is not a date \(month 13\)"),
    ("(01)0950110153000", "AI 01: 13 characters, expected 14, at position 0"),
    ("(00)376104250021234568", "SSCC 376104250021234568: check digit 8, expected 9"),
    ("(414)9501101530005", "GLN 9501101530005: check digit 5, expected"),
    ("https://id.example.com/01/09501101530004",
     "GTIN 09501101530004: check digit 4, expected 3 .*in the Digital Link URI"),
    ("https://id.example.com/01/09501101530003?17=261331", r"not a date \(month 13\)"),
    ("https://id.example.com/01/09501101530003/10/" + "L" * 21, "AI 10: 21 characters"),
    ("https://id.example.com/414/9501101530003/254/A%20B", "AI 254: 'A B' has ' '"),
])
def test_malformed_gs1_that_claims_gs1_raises(text: str, message: str):
    with pytest.raises(ValueError, match=message):
        scan_fields(text, today=TODAY)


def test_hri_must_start_with_an_ai():
    with pytest.raises(ValueError, match="must start with '\\(AI\\)'"):
        parse_gs1("(23)0950(01)09501101530003", today=TODAY)  # (23) is not an AI


def test_parse_gs1_rejects_a_url_without_a_primary_key():
    with pytest.raises(ValueError, match="is not a GS1 Digital Link URI"):
        parse_gs1("https://example.com/about", today=TODAY)


@pytest.mark.parametrize("text", [
    "]C00109501101530004",            # Code 128 without FNC1: not GS1, even if it looks so
    "]C01726133110AB",
    "]d1HELLO WORLD",
    "]Q1some text",
    "0109501101530004",               # no AIM id, bad check digit: not GS1
    "0112",
    "17261331",
    "PART-4711",
    "",
    "https://example.com/about?x=1",  # a URL without a key or a handle
    "]A0ABC-123",
    "]z0(not hri",
    "(23)0950",                       # (23) is no AI: not GS1 text
    "https://example.com/01/news",    # /01/ followed by no GTIN: a plain URL
    "https://example.com/00/12/10/x",
])
def test_codes_without_gs1_claim_pass_through_as_data(text: str):
    aim, data = parse_aim(text)
    expected = {"data": data}
    if aim is not None:
        expected |= {"symbology": str(aim), "symbology_name": aim.name}
    assert scan_fields(text, today=TODAY) == expected


def test_no_aim_id_but_element_string_with_a_checked_key_is_read_as_gs1():
    fields = scan_fields("0109501101530003172612311012AB", today=TODAY)
    assert (fields["gtin"], fields["expiry"], fields["batch"]) == (
        "09501101530003", "2026-12-31", "12AB")
    assert "symbology" not in fields
    assert scan_fields(f"10AB{GS}21XY", today=TODAY)["serial"] == "XY"


# --- HRI and Digital Link ------------------------------------------------------------------------


def test_hri_form():
    fields = scan_fields("(01)09501101530003(17)261231(10)AB(X)(21)99", today=TODAY)
    assert fields["gtin"] == "09501101530003"
    assert fields["expiry"] == "2026-12-31"
    assert fields["batch"] == "AB(X)"  # parentheses that hold no AI stay in the value
    assert fields["serial"] == "99"
    data = parse_gs1("(01)09501101530003(3103)001250", today=TODAY)
    assert data.form == "hri"
    assert data.hri() == "(01)09501101530003(3103)001250"


def test_digital_link_uri():
    url = "https://id.example.com/01/09501101530003/10/AB12/21/99"
    fields = scan_fields(url, today=TODAY)
    assert fields == {"data": url, "ai.01": "09501101530003", "ai.10": "AB12", "ai.21": "99",
                      "gtin": "09501101530003", "batch": "AB12", "serial": "99"}
    fields = scan_fields("]Q1HTTPS://example.com/gs1/01/9501101530003/21/A%2FB?17=270300"
                         "&3103=000500&linkType=gs1:pip", today=TODAY)
    assert fields["gtin"] == "09501101530003"  # GTIN-13 in the URI, 14 digits as AI 01
    assert fields["serial"] == "A/B"           # percent-escapes decoded
    assert fields["expiry"] == "2027-03-31"
    assert fields["net_weight_kg"] == "0.500"
    assert not any("linkType" in key or "gs1:pip" in value
                   for key, value in fields.items() if key != "data")
    data = parse_gs1("https://id.example.com/00/376104250021234569/", today=TODAY)
    assert data.form == "digital link"
    assert data.elements[0].ai == "00"


# --- AIM identifiers -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "name", "gs1"), [
    ("]C0ABC", "Code 128", False),
    ("]C1ABC", "GS1-128", True),
    ("]C2ABC", "Code 128 (FNC1 in 2nd position)", False),
    ("]E0ABC", "EAN-13/UPC-A/UPC-E", False),
    ("]E3ABC", "EAN-13/UPC with add-on", False),
    ("]E4ABC", "EAN-8", False),
    ("]I0ABC", "ITF", False),
    ("]I1ABC", "ITF-14", False),
    ("]e0ABC", "GS1 DataBar", True),
    ("]d1ABC", "Data Matrix", False),
    ("]d2ABC", "GS1 DataMatrix", True),
    ("]Q1ABC", "QR Code", False),
    ("]Q3ABC", "GS1 QR Code", True),
    ("]J1ABC", "GS1 DotCode", True),
    ("]A0ABC", "Code 39", False),
    ("]L0ABC", "PDF417", False),
    ("]z0ABC", "Aztec Code", False),
    ("]h0ABC", "Han Xin", False),
])
def test_aim_identifiers(text: str, name: str, gs1: bool):
    aim, rest = parse_aim(text)
    assert aim is not None
    assert (str(aim), aim.name, aim.is_gs1, rest) == (text[:3], name, gs1, "ABC")


def test_parse_aim_without_identifier():
    assert parse_aim("0109501101530003") == (None, "0109501101530003")
    assert parse_aim("]") == (None, "]")
    assert parse_aim("]1A") == (None, "]1A")
    assert parse_aim("]W0x") == (AimId("W", "0"), "x")
    assert AimId("W", "0").name == "unknown symbology 'W'"


@pytest.mark.parametrize(("text", "gtin"), [
    ("]E05901234123457", "05901234123457"),
    ("]E0036000291452", "00036000291452"),   # UPC-A sent as 12 digits
    ("]E4 96385074".replace(" ", ""), "00000096385074"),
    ("]E3590123412345712", "05901234123457"),  # EAN-13 + 2-digit add-on
    ("]I115012345000013", None),  # bad check digit: just data
    ("]I115012345000012", "15012345000012"),
    ("]E05901234123458", None),
])
def test_retail_symbols_give_a_gtin(text: str, gtin: str | None):
    fields = scan_fields(text, today=TODAY)
    assert fields.get("gtin") == gtin
    assert not any(k.startswith("ai.") for k in fields)


# --- handles -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "handle"), [
    ("88.1000.2/mm", Handle("88.1000.2", "mm")),
    ("  88.1000.2/mm  ", Handle("88.1000.2", "mm")),
    ("20.500.12345/abc/def", Handle("20.500.12345", "abc/def")),
    ("88.608.24161301/产品.型号-01.20240101.0001",
     Handle("88.608.24161301", "产品.型号-01.20240101.0001")),
    ("https://id.example.cn/88.1000.2/mm", Handle("88.1000.2", "mm")),
    ("https://hdl.handle.net/20.500.12345/Ab/c%20d", Handle("20.500.12345", "Ab/c d")),
    ("http://resolve.example.cn/r/88.123.99/%E4%BA%A7%E5%93%81", Handle("88.123.99", "产品")),
    ("https://resolve.example.cn/?id=88.123.99/SN-0001&lang=zh", Handle("88.123.99", "SN-0001")),
    ("https://resolve.example.cn/q?handle=88.123.99%2F%E4%BA%A7", Handle("88.123.99", "产")),
    ("88/mm", None),                 # the prefix needs a dot
    ("8.1/mm", None),                # and at least two leading digits
    ("88.1000.2/", None),            # and a suffix
    ("88.1000.2/a\x1db", None),      # no control characters
    ("abc/def", None),
    ("https://example.com/about", None),
    ("https://example.com/88.1000.2", None),
])
def test_parse_handle(text: str, handle: Handle | None):
    assert parse_handle(text) == handle


def test_handles_are_case_sensitive():
    assert parse_handle("88.1000.2/MM") != parse_handle("88.1000.2/mm")
    assert str(parse_handle("88.1000.2/Mm")) == "88.1000.2/Mm"


def test_handle_fields_from_a_scan():
    fields = scan_fields("]Q1https://id.example.cn/88.1000.2/mm", today=TODAY)
    assert fields == {"symbology": "]Q1", "symbology_name": "QR Code",
                      "data": "https://id.example.cn/88.1000.2/mm", "handle": "88.1000.2/mm",
                      "handle_prefix": "88.1000.2", "handle_suffix": "mm"}


def test_utf8_suffix_read_as_latin1_is_repaired():
    sent = "]d188.608.24161301/产品-001".encode()
    fields = scan_fields(sent.decode("latin-1"), today=TODAY)  # how the serial port reads it
    assert fields["handle_suffix"] == "产品-001"
    assert fields["data"] == "88.608.24161301/产品-001"
    assert scan_fields("]d1Größe", today=TODAY)["data"] == "Größe"  # real Latin-1 stays


# --- the table and field names -------------------------------------------------------------------


def test_ai_table_holds_the_required_ais():
    required = ["00", "01", "02", "10", "11", "12", "13", "15", "16", "17", "20", "21", "22",
                "30", "37", "240", "241", "250", "251", "253", "254", "400", "401", "402", "403",
                "410", "411", "412", "413", "414", "415", "420", "421", "7003", "8003", "8004",
                "8006", "8017", "8018", "8020", *(str(n) for n in range(90, 100)),
                *(f"{m}{d}" for m in range(310, 370) for d in range(6)
                  if m not in (317, 318, 319, 338, 339, 358, 359))]  # these do not exist
    missing = [ai for ai in required if ai not in APPLICATION_IDENTIFIERS]
    assert missing == []
    assert APPLICATION_IDENTIFIERS["3103"].title == "NET WEIGHT (kg)"
    assert APPLICATION_IDENTIFIERS["3103"].decimals == 3
    assert APPLICATION_IDENTIFIERS["10"].decimals is None
    assert APPLICATION_IDENTIFIERS["7031"].title == "PROCESSOR # 1"
    assert APPLICATION_IDENTIFIERS["7230"].title == "CERT # 1"
    assert APPLICATION_IDENTIFIERS["7239"].title == "CERT # 10"
    assert (APPLICATION_IDENTIFIERS["10"].min_len, APPLICATION_IDENTIFIERS["10"].max_len) == (1, 20)
    with pytest.raises(TypeError):
        APPLICATION_IDENTIFIERS["99999"] = APPLICATION_IDENTIFIERS["10"]  # type: ignore[index]


def test_ai_table_matches_the_research_formats():
    research = {"00": "N18", "01": "N14", "10": "X..20", "11": "N6", "13": "N6", "15": "N6",
                "17": "N6", "21": "X..20", "30": "N..8", "37": "N..8", "240": "X..30",
                "241": "X..30", "250": "X..30", "400": "X..30"}
    for ai, fmt in research.items():
        (comp,) = APPLICATION_IDENTIFIERS[ai].components
        assert f"{comp.charset}{'..' if comp.min_len != comp.max_len else ''}{comp.max_len}" == fmt


def test_predefined_length_flags_follow_figure_7_8_5_1():
    prefixes = {"00", "01", "02", "03", "04", "11", "12", "13", "14", "15", "16", "17", "18",
                "19", "20", "31", "32", "33", "34", "35", "36", "41"}
    for ai, spec in APPLICATION_IDENTIFIERS.items():
        assert spec.predefined_length == (ai[:2] in prefixes), ai
        if spec.predefined_length:
            assert spec.fixed_length, ai


def test_ai_table_is_prefix_free():
    ais = sorted(APPLICATION_IDENTIFIERS)
    clashes = [(a, b) for a in ais for b in ais if a != b and b.startswith(a)]
    assert clashes == []


def test_scan_field_names():
    assert SCAN_FIELDS[:16] == (
        "symbology", "symbology_name", "data", "gtin", "sscc", "batch", "serial", "prod_date",
        "pack_date", "best_before", "expiry", "count", "order", "handle", "handle_prefix",
        "handle_suffix")
    for name in [*SCAN_FIELDS, "ai.01", "ai.3103", "ai.91", "ai.7003", "ai.8020"]:
        assert is_scan_field(name), name
    for name in ["ai.310", "ai.23", "ai.1", "ai.01x", "ai.", "gtin ", "weight", "AI.01"]:
        assert not is_scan_field(name), name


def test_values_are_frozen():
    h = Handle("88.1", "x")
    with pytest.raises(AttributeError):
        h.prefix = "x"  # type: ignore[misc]
    assert not hasattr(h, "__dict__")
    data = parse_gs1("10AB", today=TODAY)
    assert isinstance(data, GS1Data)
    with pytest.raises(AttributeError):
        data.elements = ()  # type: ignore[misc]


# --- round trips ---------------------------------------------------------------------------------

_CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_CSETS = {"N": "0123456789", "X": _CSET82, "Y": "#-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
          "Z": "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz="}


@st.composite
def _component_data(draw: st.DrawFn, spec: AiSpec) -> str:
    """Valid data for one AI, built from its components (independently of the parser)."""
    out = ""
    for comp in spec.components:
        if comp.optional and draw(st.booleans()):
            break
        if "yymmd0" in comp.checks or "yymmdd" in comp.checks:
            day = draw(st.dates(dt.date(2000, 1, 1), dt.date(2049, 12, 31)))
            text = day.strftime("%y%m%d")
            if "yymmd0" in comp.checks and draw(st.booleans()):
                text = text[:4] + "00"
        elif "hhmm" in comp.checks:
            text = f"{draw(st.integers(0, 23)):02d}{draw(st.integers(0, 59)):02d}"
        else:
            size = draw(st.integers(comp.min_len, min(comp.max_len, 24)))
            text = "".join(draw(st.lists(st.sampled_from(_CSETS[comp.charset]),
                                         min_size=size, max_size=size)))
            if "csum" in comp.checks:
                text = text[:-1] + str(gs1_check_digit(text[:-1]))
        out += text
    return out


_ELEMENTS = st.lists(st.sampled_from(sorted(APPLICATION_IDENTIFIERS)), min_size=1, max_size=6,
                     unique=True).flatmap(
    lambda ais: st.tuples(*(st.tuples(st.just(ai), _component_data(APPLICATION_IDENTIFIERS[ai]))
                            for ai in ais)))


def _encode(elements: tuple[tuple[str, str], ...]) -> str:
    """Encoder order: predefined-length AIs first, GS after the others except the last."""
    fixed = [e for e in elements if APPLICATION_IDENTIFIERS[e[0]].predefined_length]
    other = [e for e in elements if not APPLICATION_IDENTIFIERS[e[0]].predefined_length]
    return "".join(ai + raw for ai, raw in fixed) + GS.join(ai + raw for ai, raw in other)


@settings(max_examples=300, deadline=None)
@given(_ELEMENTS)
def test_element_strings_round_trip(elements: tuple[tuple[str, str], ...]):
    data = parse_gs1(_encode(elements), today=TODAY)
    fixed = [e for e in elements if APPLICATION_IDENTIFIERS[e[0]].predefined_length]
    other = [e for e in elements if not APPLICATION_IDENTIFIERS[e[0]].predefined_length]
    assert [(e.ai, e.raw) for e in data] == fixed + other
    for e in data:
        assert e.title == APPLICATION_IDENTIFIERS[e.ai].title
        if isinstance(e.value, dt.date) and not isinstance(e.value, dt.datetime):
            assert e.value.strftime("%y%m") == e.raw[:4]
            assert e.raw[4:6] in (e.value.strftime("%d"), "00")
        if isinstance(e.value, Decimal):
            assert e.value == Decimal(e.raw) / 10 ** int(e.ai[3])
    fields = scan_fields("]C1" + _encode(elements), today=TODAY)
    assert {k[3:] for k in fields if k.startswith("ai.")} == {ai for ai, _ in elements}


@settings(max_examples=200, deadline=None)
@given(_ELEMENTS.filter(lambda es: not any("(" in raw for _, raw in es)))
def test_hri_round_trips(elements: tuple[tuple[str, str], ...]):
    hri = "".join(f"({ai}){raw}" for ai, raw in elements)
    data = parse_gs1(hri, today=TODAY)
    assert [(e.ai, e.raw) for e in data] == list(elements)
    assert data.hri() == hri


_PREFIX = st.from_regex(re.compile(r"[0-9]{2,4}(\.[0-9A-Za-z_-]{1,8}){1,3}"), fullmatch=True)
_SUFFIX = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1,
                  max_size=30).filter(lambda s: s == s.strip())


@settings(max_examples=200, deadline=None)
@given(_PREFIX, _SUFFIX)
def test_handles_round_trip(prefix: str, suffix: str):
    handle = Handle(prefix, suffix)
    assert parse_handle(str(handle)) == handle
    line = ("]Q1" + str(handle)).encode().decode("latin-1")  # as the serial port reads it
    fields = scan_fields(line, today=TODAY)
    assert (fields["handle_prefix"], fields["handle_suffix"]) == (prefix, suffix)
    url = f"https://id.example.cn/{prefix}/{quote(suffix, safe='/')}"
    assert parse_handle(url) == handle
    assert parse_handle(f"https://id.example.cn/r?id={quote(str(handle), safe='')}") == handle
