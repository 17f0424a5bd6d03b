"""MTConnect documents, parsed safely: defusedxml (no DTD, no entities, no external
references) over bytes whose size was bounded before parsing; elements matched by local
name under any MTConnect namespace (``urn:mtconnect.org:…:1.x/2.x``, old
``urn:mtconnect.com:…``, or none).

Three documents: the probe (:class:`DeviceModel`), streams from ``/current`` and
``/sample`` (:class:`StreamsDoc`), and errors (:class:`ErrorDoc`, both the schema < 2.6
``<Error errorCode=…>`` and the 2.6+ typed elements such as ``<OutOfRange>``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime

import defusedxml
import defusedxml.ElementTree as SafeET

from ....core import ProtocolError

__all__ = [
    "DataItem",
    "DeviceInfo",
    "DeviceModel",
    "ErrorDoc",
    "Header",
    "Observation",
    "StreamsDoc",
    "parse_document",
    "timestamp_ns",
]

_NAMESPACE = re.compile(r"urn:mtconnect\.(?:org|com):MTConnect[A-Za-z]+:[0-9][0-9.]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECTIONS = {"Samples": "SAMPLE", "Events": "EVENT", "Condition": "CONDITION"}
_UPPER = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _local(tag: str) -> str:
    return tag[tag.rfind("}") + 1:]


@dataclass(frozen=True, slots=True)
class Header:
    """The header attributes every document carries (sequences only in streams)."""

    instance_id: str
    version: str = ""
    sender: str = ""
    buffer_size: int | None = None
    model_change_time: str | None = None  # deviceModelChangeTime (1.7+)
    next_sequence: int | None = None
    first_sequence: int | None = None
    last_sequence: int | None = None


@dataclass(frozen=True, slots=True)
class DataItem:
    """One data item of the probe."""

    id: str
    name: str | None
    type: str
    category: str  # SAMPLE, EVENT, CONDITION
    device: str  # the device's name
    component: str  # the component path (``Axes/Linear[X]``)
    sub_type: str | None = None
    units: str | None = None
    representation: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One device of the probe."""

    id: str
    name: str
    uuid: str


@dataclass(frozen=True, slots=True)
class DeviceModel:
    """What ``/probe`` answered: devices and their data items, by id."""

    header: Header
    devices: tuple[DeviceInfo, ...]
    items: dict[str, DataItem]

    @property
    def by_name(self) -> dict[str, list[DataItem]]:
        """Data items by name (several when devices or components repeat a name)."""
        out: dict[str, list[DataItem]] = {}
        for item in self.items.values():
            if item.name:
                out.setdefault(item.name, []).append(item)
        return out


@dataclass(slots=True)
class Observation:
    """One observation of a streams document."""

    item_id: str
    element: str  # local name: Position, Execution, Normal, Fault …
    category: str  # the section it came in: SAMPLE, EVENT, CONDITION
    value: str  # the text ("" for none)
    timestamp: str
    sequence: int
    native_code: str | None = None
    native_severity: str | None = None
    qualifier: str | None = None


@dataclass(frozen=True, slots=True)
class StreamsDoc:
    """What ``/current`` or ``/sample`` answered (a heartbeat has no observations)."""

    header: Header
    observations: list[Observation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ErrorDoc:
    """An MTConnectError document: ``(code, text)`` pairs, codes as UPPER_SNAKE."""

    header: Header
    errors: tuple[tuple[str, str], ...]

    def has(self, code: str) -> bool:
        return any(c == code for c, _ in self.errors)

    def describe(self) -> str:
        return "; ".join(f"{c}: {t}" if t else c for c, t in self.errors)


def parse_document(data: bytes, what: str) -> DeviceModel | StreamsDoc | ErrorDoc:
    """Parse one agent document (``what`` names the request, for messages).

    Raises :class:`ProtocolError` for XML that is malformed or hostile (a DTD, entity
    declarations, external references: refused, never expanded) or is no MTConnect
    document.
    """
    try:
        _vet(data)
        root = ET.fromstring(data)
    except defusedxml.DTDForbidden:
        raise ProtocolError(f"refused the answer to {what}: it declares a DTD (hostile XML "
                            "such as an entity bomb or an external entity; MTConnect "
                            "documents have none)") from None
    except defusedxml.EntitiesForbidden as exc:
        raise ProtocolError(f"refused the answer to {what}: it declares the entity "
                            f"{exc.name!r} (hostile XML)") from None
    except defusedxml.DefusedXmlException as exc:
        raise ProtocolError(f"refused the answer to {what}: {exc}") from None
    except ET.ParseError as exc:
        head = data[:40].decode("utf-8", "replace")
        raise ProtocolError(f"the answer to {what} is not well-formed XML ({exc}); it "
                            f"starts {head!r}") from None
    tag = root.tag
    ns = tag[1:tag.index("}")] if tag.startswith("{") else ""
    if ns and not _NAMESPACE.fullmatch(ns):
        raise ProtocolError(f"the answer to {what} is in namespace {ns!r}: expected an "
                            "MTConnect namespace (urn:mtconnect.org:MTConnect…:VERSION)")
    kind = _local(tag)
    header_el = None
    for child in root:
        if _local(child.tag) == "Header":
            header_el = child
            break
    if header_el is None:
        raise ProtocolError(f"the answer to {what} (<{kind}>) has no Header")
    header = _header(header_el, what)
    if kind == "MTConnectStreams":
        return StreamsDoc(header, _observations(root, what))
    if kind == "MTConnectDevices":
        return _device_model(root, header)
    if kind == "MTConnectError":
        return ErrorDoc(header, _errors(root))
    raise ProtocolError(f"the answer to {what} is a <{kind}> document: expected "
                        "MTConnectStreams, MTConnectDevices or MTConnectError")


class _RootReachedError(Exception):
    """The vetting parser reached the root element: the prolog holds no DTD."""


class _StopAtRoot:
    """A parser target that ends parsing at the first element."""

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        raise _RootReachedError

    def end(self, tag: str) -> None:
        return None

    def data(self, text: str) -> None:
        return None

    def close(self) -> None:
        return None


def _vet(data: bytes) -> None:
    """Let defusedxml's parser (DTDs, entities and external references forbidden) read the
    document up to its root element.

    A DTD — and with it every entity declaration and external reference — can only stand
    in the prolog, before the root element (expat refuses one anywhere else), so a
    document that gets past this has none, and the C parser that builds the tree cannot
    expand anything. defusedxml's own tree builder is a pure-Python parser, 2-3x slower on
    the streams' thousands of elements; this keeps its guard at the cost of the prolog.
    """
    parser = SafeET.DefusedXMLParser(target=_StopAtRoot(), forbid_dtd=True,
                                     forbid_entities=True, forbid_external=True)
    try:
        parser.feed(data)
        parser.close()
    except _RootReachedError:
        return


def _int(value: str | None, name: str, what: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ProtocolError(f"the answer to {what} has {name}={value!r}: expected an "
                            "integer") from None


def _header(el: ET.Element, what: str) -> Header:
    a = el.attrib
    instance = a.get("instanceId")
    if instance is None:
        raise ProtocolError(f"the answer to {what} has a Header without instanceId")
    return Header(instance_id=instance, version=a.get("version", ""),
                  sender=a.get("sender", ""),
                  buffer_size=_int(a.get("bufferSize"), "bufferSize", what),
                  model_change_time=a.get("deviceModelChangeTime"),
                  next_sequence=_int(a.get("nextSequence"), "nextSequence", what),
                  first_sequence=_int(a.get("firstSequence"), "firstSequence", what),
                  last_sequence=_int(a.get("lastSequence"), "lastSequence", what))


def _observations(root: ET.Element, what: str) -> list[Observation]:
    out: list[Observation] = []
    append = out.append
    locals_: dict[str, str] = {}  # tag -> local name, once per document
    for streams in root:
        if _local(streams.tag) != "Streams":
            continue
        for device in streams:
            for component in device:
                for section in component:
                    category = _SECTIONS.get(_local(section.tag))
                    if category is None:
                        continue
                    for el in section:
                        a = el.attrib
                        item = a.get("dataItemId")
                        seq = a.get("sequence")
                        if item is None or seq is None:
                            raise ProtocolError(
                                f"the answer to {what} has an observation "
                                f"<{_local(el.tag)}> without dataItemId or sequence")
                        try:
                            sequence = int(seq)
                        except ValueError:
                            raise ProtocolError(f"the answer to {what} has sequence="
                                                f"{seq!r}: expected an integer") from None
                        tag = el.tag
                        name = locals_.get(tag)
                        if name is None:
                            name = locals_[tag] = _local(tag)
                        text = el.text
                        obs = Observation(item, name, category,
                                          text.strip() if text else "",
                                          a.get("timestamp", ""), sequence)
                        if category == "CONDITION":
                            obs.native_code = a.get("nativeCode")
                            obs.native_severity = a.get("nativeSeverity")
                            obs.qualifier = a.get("qualifier")
                        append(obs)
    return out


def _device_model(root: ET.Element, header: Header) -> DeviceModel:
    devices: list[DeviceInfo] = []
    items: dict[str, DataItem] = {}
    for box in root:
        if _local(box.tag) != "Devices":
            continue
        for dev in box:
            if _local(dev.tag) not in ("Device", "Agent"):
                continue
            name = dev.get("name") or dev.get("id") or "device"
            devices.append(DeviceInfo(dev.get("id", ""), name, dev.get("uuid", "")))
            _walk(dev, name, "", items)
    return DeviceModel(header, tuple(devices), items)


def _walk(el: ET.Element, device: str, path: str, items: dict[str, DataItem]) -> None:
    """Collect the data items of ``el`` and of its components, recursively."""
    for child in el:
        local = _local(child.tag)
        if local == "DataItems":
            for di in child:
                if _local(di.tag) != "DataItem":
                    continue
                a = di.attrib
                item_id = a.get("id")
                if not item_id:
                    continue
                items[item_id] = DataItem(
                    id=item_id, name=a.get("name"), type=a.get("type", ""),
                    category=a.get("category", "").upper(), device=device,
                    component=path or "Device", sub_type=a.get("subType"),
                    units=a.get("units"), representation=a.get("representation"))
        elif local == "Components":
            for comp in child:
                name = comp.get("name") or comp.get("id") or ""
                here = f"{_local(comp.tag)}[{name}]" if name else _local(comp.tag)
                _walk(comp, device, f"{path}/{here}" if path else here, items)


def _errors(root: ET.Element) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for el in root.iter():
        local = _local(el.tag)
        if local == "Error" and "errorCode" in el.attrib:  # schema < 2.6
            out.append((el.attrib["errorCode"], (el.text or "").strip()))
    if out:
        return tuple(out)
    for box in root:  # 2.6+: <Errors><OutOfRange><ErrorMessage>…
        if _local(box.tag) != "Errors":
            continue
        for el in box:
            code = _UPPER.sub("_", _local(el.tag)).upper()
            message = ""
            for sub in el:
                if _local(sub.tag) == "ErrorMessage":
                    message = (sub.text or "").strip()
            out.append((code, message))
    return tuple(out) or (("UNKNOWN", "an error document without errors"),)


def timestamp_ns(text: str) -> int | None:
    """An MTConnect timestamp (UTC ISO-8601, ``…Z``) in ns since the epoch; None if it
    is not one."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    d = dt - _EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000
