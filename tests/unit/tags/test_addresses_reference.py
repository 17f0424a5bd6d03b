"""docs/reference/addresses.md stays true: its error examples and byte tables are checked."""

import re
from pathlib import Path

import pytest

from smartline.tags import AddressError, parse_address, parse_modbus
from smartline.tags.codec import encode_registers

DOC = (Path(__file__).parents[3] / "docs" / "reference" / "addresses.md").read_text("utf-8")


def _error_lines() -> list[str]:
    block = DOC.split("## Errors", 1)[1].split("```", 2)[1]
    return [line for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("line", _error_lines())
def test_documented_errors_are_the_real_messages(line):
    text = re.search(r" in '(.*)'$", line).group(1)
    family = ("opcua" if text.startswith(("ns=", "i=")) else
              "modbus" if text[:3] in ("hr:", "co:", "ir:", "di:") else "s7")
    with pytest.raises(AddressError) as info:
        parse_address(family, text)
    assert str(info.value) == line


def test_documented_float32_table():
    rows = re.findall(r"^\| `(abcd|cdab|badc|dcba)` \| `0x(\w{4})` \| `0x(\w{4})` \|$", DOC,
                      re.MULTILINE)
    assert len(rows) == 4
    for order, first, second in rows:
        words = encode_registers(parse_modbus(f"hr:0:float32:{order}"), 123.456)
        assert words == [int(first, 16), int(second, 16)]


def test_documented_uint64_table():
    rows = re.findall(r"\| `(abcd|cdab|badc|dcba)` \| `0x(\w{4})` \| `0x(\w{4})` \| "
                      r"`0x(\w{4})` \| `0x(\w{4})` \|", DOC)
    assert len(rows) == 4
    for order, *words in rows:
        assert encode_registers(parse_modbus(f"hr:0:uint64:{order}"), 0x0102030405060708) == [
            int(w, 16) for w in words]
