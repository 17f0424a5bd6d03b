"""Engineering units as OPC UA ``EUInformation`` (OPC 10000-8 §5.6.3): UNECE Recommendation
20 common codes for the unit texts line files use, folded into ``UnitId`` as the standard
asks; a unit without a code gets ``UnitId`` -1 and its own text as the display name."""

from __future__ import annotations

from asyncua import ua

__all__ = ["UNECE_NAMESPACE", "eu_information", "unece_code", "unit_id"]

UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"

#: unit text of a line file -> (UNECE Rec 20 common code, display symbol, description)
_UNECE: dict[str, tuple[str, str, str]] = {
    "degC": ("CEL", "°C", "degree Celsius"),
    "°C": ("CEL", "°C", "degree Celsius"),
    "degF": ("FAH", "°F", "degree Fahrenheit"),
    "K": ("KEL", "K", "kelvin"),
    "%": ("P1", "%", "percent"),
    "1": ("C62", "1", "one"),
    "g": ("GRM", "g", "gram"),
    "kg": ("KGM", "kg", "kilogram"),
    "t": ("TNE", "t", "tonne"),
    "mm": ("MMT", "mm", "millimetre"),
    "cm": ("CMT", "cm", "centimetre"),
    "m": ("MTR", "m", "metre"),
    "um": ("4H", "µm", "micrometre"),
    "µm": ("4H", "µm", "micrometre"),
    "ml": ("MLT", "ml", "millilitre"),
    "l": ("LTR", "l", "litre"),
    "m3": ("MTQ", "m³", "cubic metre"),
    "s": ("SEC", "s", "second"),
    "ms": ("C26", "ms", "millisecond"),
    "min": ("MIN", "min", "minute"),
    "h": ("HUR", "h", "hour"),
    "rpm": ("RPM", "r/min", "revolutions per minute"),
    "1/min": ("C94", "min⁻¹", "reciprocal minute"),
    "Hz": ("HTZ", "Hz", "hertz"),
    "N": ("NEW", "N", "newton"),
    "kN": ("KNT", "kN", "kilonewton"),
    "N.m": ("NU", "N·m", "newton metre"),
    "Nm": ("NU", "N·m", "newton metre"),
    "A": ("AMP", "A", "ampere"),
    "mA": ("4K", "mA", "milliampere"),
    "V": ("VLT", "V", "volt"),
    "mV": ("2Z", "mV", "millivolt"),
    "W": ("WTT", "W", "watt"),
    "kW": ("KWT", "kW", "kilowatt"),
    "VA": ("D46", "V·A", "volt - ampere"),
    "var": ("D44", "var", "var"),
    "kWh": ("KWH", "kW·h", "kilowatt hour"),
    "kvarh": ("K3", "kvar·h", "kilovolt ampere reactive hour"),
    "ohm": ("OHM", "Ω", "ohm"),
    "Pa": ("PAL", "Pa", "pascal"),
    "hPa": ("A97", "hPa", "hectopascal"),
    "kPa": ("KPA", "kPa", "kilopascal"),
    "MPa": ("MPA", "MPa", "megapascal"),
    "bar": ("BAR", "bar", "bar [unit of pressure]"),
    "mbar": ("MBR", "mbar", "millibar"),
    "m/s": ("MTS", "m/s", "metre per second"),
    "mm/s": ("C16", "mm/s", "millimetre per second"),
    "m/min": ("2X", "m/min", "metre per minute"),
    "deg": ("DD", "°", "degree [unit of angle]"),
    "byte": ("AD", "byte", "byte"),
    "bytes": ("AD", "byte", "byte"),
}


def unece_code(unit: str) -> str | None:
    """The UNECE Rec 20 common code of a line file's unit text (None when it has none)."""
    entry = _UNECE.get(unit.strip())
    return entry[0] if entry is not None else None


def unit_id(code: str) -> int:
    """``UnitId`` of a UNECE common code: its (up to three) ASCII bytes folded big-endian."""
    out = 0
    for ch in code:
        out = out << 8 | ord(ch)
    return out


def eu_information(unit: str) -> ua.EUInformation:
    """The ``EngineeringUnits`` value for ``unit``; unknown units: ``UnitId`` -1 and the unit
    text as display name (OPC 10000-8: -1 means no UNECE code)."""
    entry = _UNECE.get(unit.strip())
    if entry is None:
        return ua.EUInformation(NamespaceUri=UNECE_NAMESPACE, UnitId=-1,
                                DisplayName=ua.LocalizedText(unit),
                                Description=ua.LocalizedText(unit))
    code, symbol, description = entry
    return ua.EUInformation(NamespaceUri=UNECE_NAMESPACE, UnitId=unit_id(code),
                            DisplayName=ua.LocalizedText(symbol),
                            Description=ua.LocalizedText(description))
