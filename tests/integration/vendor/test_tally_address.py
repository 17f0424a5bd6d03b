"""The ACME Tally address grammar (``CH<n>[:TYPE]`` | ``ST``): canonical spelling, round
trips, and errors that say what was expected and point at the offending column."""

from __future__ import annotations

import dataclasses

import pytest
from acme_tally.address import MAX_CHANNEL, STATUS, TYPES, TallyAddress, parse_tally

from smartline.core import Address
from smartline.tags import AddressError, DataType, TagAddress


@pytest.mark.parametrize(("text", "channel", "dtype", "canonical"), [
    ("CH1", 1, DataType.FLOAT64, "CH1"),
    ("CH1:f64", 1, DataType.FLOAT64, "CH1"),
    ("ch12:U64", 12, DataType.UINT64, "CH12:u64"),
    ("CH999:i64", 999, DataType.INT64, "CH999:i64"),
    ("  CH7:bool ", 7, DataType.BOOL, "CH7:bool"),
    ("Ch8:TEXT", 8, DataType.STRING, "CH8:text"),
    ("ST", None, DataType.UINT16, "ST"),
    ("st", None, DataType.UINT16, "ST"),
])
def test_addresses_parse_to_their_canonical_spelling(text: str, channel: int | None,
                                                    dtype: DataType, canonical: str) -> None:
    address = parse_tally(text)
    assert (address.channel, address.dtype) == (channel, dtype)
    assert address.canonical() == canonical == str(address)
    assert parse_tally(canonical) == address


def test_every_address_round_trips_through_its_canonical_spelling() -> None:
    for channel in range(1, MAX_CHANNEL + 1):
        for name, dtype in TYPES.items():
            address = parse_tally(f"CH{channel}:{name}")
            assert address == TallyAddress(channel, dtype)
            assert parse_tally(address.canonical()) == address
    assert parse_tally(STATUS.canonical()) is STATUS


def test_addresses_follow_the_address_protocols() -> None:
    text = parse_tally("CH8:text")
    assert isinstance(text, Address) and isinstance(text, TagAddress)
    assert text.family == "acme"
    assert text.is_text and text.elements == 1 and text.count is None
    assert text.text_rule == (64, "utf-8")
    assert text.writable_area
    number = parse_tally("CH5")
    assert not number.is_text and number.text_rule is None and number.strlen is None
    assert not STATUS.writable_area
    assert STATUS.dtype is DataType.UINT16
    assert parse_tally("CH5").item == "CH5" and STATUS.item == "ST"
    with pytest.raises(dataclasses.FrozenInstanceError):
        number.channel = 6  # type: ignore[misc]
    assert hash(parse_tally("ch5")) == hash(number)  # usable as a key


@pytest.mark.parametrize(("text", "column", "message"), [
    ("", 0, "empty address: expected CH<n>[:TYPE] or ST"),
    ("XY3", 0, "unknown item 'XY3': expected CH<n>[:TYPE]"),
    ("  DB1", 2, "unknown item 'DB1'"),
    ("CH", 2, "channel number missing after CH"),
    ("CH:u64", 2, "channel number missing after CH"),
    ("CH0", 2, "channel 0 out of range: expected 1..999"),
    ("CH1000", 2, "channel 1000 out of range: expected 1..999"),
    ("CH007", 2, "channel 007: write it without leading zeros (CH7)"),
    ("CH12x", 4, "unexpected 'x' in the channel number"),
    ("CH-1", 2, "unexpected '-1' in the channel number"),
    ("CH1 :u64", 3, "unexpected ' ' in the channel number"),
    ("CH12:", 5, "empty type after ':': expected f64, i64, u64, bool or text"),
    ("CH12:f32", 5, "unknown type 'f32': expected f64, i64, u64, bool or text"),
    ("  CH12:float64", 7, "unknown type 'float64'"),
    ("CH12:u64:abcd", 8, "unexpected ':abcd' after the type"),
    ("ST:u16", 2, "ST takes no type"),
])
def test_errors_say_what_was_expected_and_where(text: str, column: int, message: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_tally(text)
    assert info.value.column == column
    assert message in str(info.value)
    if text:
        assert repr(text) in str(info.value)  # the whole address is quoted for context


def test_a_non_text_address_is_an_address_error() -> None:
    with pytest.raises(AddressError, match="expected the address as text"):
        parse_tally(12)  # type: ignore[arg-type]


def test_the_constructor_refuses_what_the_grammar_refuses() -> None:
    with pytest.raises(AddressError):
        TallyAddress(0)
    with pytest.raises(AddressError):
        TallyAddress(True)  # type: ignore[arg-type]
    with pytest.raises(AddressError):
        TallyAddress(3, DataType.FLOAT32)
    with pytest.raises(AddressError):
        TallyAddress(None, DataType.FLOAT64)
