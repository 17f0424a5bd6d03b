"""The process image: slots, scaling on ingest, quality, snapshots, change detection."""

import threading

import numpy as np
import pytest

from smartline.core import Quality, ReadResult, Reason
from smartline.cycle import OutputTracker, ProcessImage, Snapshot, _kernels
from smartline.tags import Access, Scale, TagSpec, parse_address


def tag(name, addr, **kw):
    return TagSpec(name=name, device="d", address=parse_address("memory", addr), **kw)


@pytest.fixture
def image():
    return ProcessImage([
        tag("level", "level", unit="mm", scale=Scale(gain=0.1, offset=-5.0)),
        tag("speeds", "speeds:float64[3]"),
        tag("run", "run:bool", access=Access.RW, safe=False),
        tag("recipe", "recipe:string<8>"),
        tag("count", "count:int32"),
    ])


def result(slots, raw, q=Quality.GOOD, ts=123, texts=None):
    n = len(slots)
    return ReadResult(slots=np.asarray(slots, np.intp), raw=np.asarray(raw, float),
                      quality=np.full(n, q, np.uint8), reason=np.zeros(n, np.uint8),
                      received_ns=ts, texts=texts or {})


def test_slots_are_assigned_in_order_and_arrays_expand(image):
    assert image.size == 7
    assert [image.slot(n) for n in ("level", "speeds", "run", "recipe", "count")] == [0, 1, 4, 5, 6]
    assert image.slots(["speeds", "count"]).tolist() == [1, 2, 3, 6]
    with pytest.raises(KeyError, match="unknown tag 'nope'"):
        image.slot("nope")


def test_everything_starts_bad_not_read(image):
    assert (image.quality == Quality.BAD).all() and (image.reason == Reason.NOT_READ).all()
    assert image.get("level").value is None


def test_ingest_scales_raw_to_engineering_units(image):
    image.ingest(result([0, 1, 2, 3, 6], [1000, 1.5, 2.5, 3.5, -7], ts=99))
    assert image.value[0] == pytest.approx(95.0)  # 1000 * 0.1 - 5
    assert image.raw[0] == 1000
    lv = image.get("level")
    assert lv.value == pytest.approx(95.0) and lv.quality is Quality.GOOD and lv.timestamp_ns == 99
    assert image.get("speeds").value == (1.5, 2.5, 3.5)
    assert image.get("count").value == -7 and isinstance(image.get("count").value, int)


def test_strings_and_bools_come_back_typed(image):
    image.ingest(result([4, 5], [1.0, 0.0], texts={5: "cola"}))
    assert image.get("run").value is True
    assert image.get("recipe").value == "cola"


def test_stale_keeps_last_good_value_but_bad_stays_bad(image):
    image.ingest(result([0], [100]))
    image.mark(np.array([0, 6], np.intp), Quality.STALE, Reason.DEADLINE)
    assert image.get("level").quality is Quality.STALE
    assert image.get("level").value == pytest.approx(5.0)
    assert image.get("count").quality is Quality.BAD  # never read: cannot be merely stale
    assert image.get("count").reason is Reason.NOT_READ  # and why it is bad still holds
    image.mark(np.array([0], np.intp), Quality.BAD, Reason.TIMEOUT)
    assert image.get("level").value is None and image.get("level").reason is Reason.TIMEOUT


def test_json_form_has_value_quality_timestamp(image):
    image.ingest(result([0], [100], ts=1_767_225_600_123_456_000))
    j = image.get("level").as_json()
    assert j == {"value": pytest.approx(5.0), "quality": "good",
                 "timestamp": "2026-01-01T00:00:00.123456000Z",
                 "received": "2026-01-01T00:00:00.123456000Z"}
    image.mark(np.array([0], np.intp), Quality.BAD, Reason.TIMEOUT)
    assert image.get("level").as_json()["reason"] == "timeout"


def gather(img, snap):
    """What a task's inputs phase does: one copy of its slots under the image lock."""
    with img.lock:
        return _kernels.gather_inputs(img.value, img.quality, snap.slots, snap.value,
                                      snap.quality)


def test_snapshot_copies_selected_slots(image):
    image.ingest(result([1, 2, 3], [1, 2, 3]))
    snap = Snapshot(image.slots(["speeds"]))
    gather(image, snap)
    image.ingest(result([1, 2, 3], [7, 8, 9]))
    assert snap.value.tolist() == [1, 2, 3]  # a copy, not a view
    image.mark(np.array([2], np.intp), Quality.BAD, Reason.TIMEOUT)
    assert gather(image, snap) == 1
    assert snap.value[[0, 2]].tolist() == [7, 9] and np.isnan(snap.value[1])  # BAD is NaN


def test_snapshots_never_see_a_torn_array_while_a_writer_hammers_it():
    img = ProcessImage([tag("v", "v:float64[64]")])
    stop = threading.Event()

    def writer():
        k = 0
        while not stop.is_set():
            k += 1
            img.ingest(result(range(64), np.full(64, float(k))))

    t = threading.Thread(target=writer)
    t.start()
    snap = Snapshot(img.slots(["v"]))
    torn = 0
    try:
        for _ in range(3000):
            gather(img, snap)
            torn += int(snap.value.min() != snap.value.max())
    finally:
        stop.set()
        t.join()
    assert torn == 0


def test_store_puts_outputs_in_as_good_with_raw_back_computed(image):
    image.store(np.array([0], np.intp), np.array([15.0]), 5)
    assert image.raw[0] == pytest.approx(200.0)
    assert image.get("level").quality is Quality.GOOD


def test_output_tracker_reports_changes_beyond_deadband():
    tr = OutputTracker(np.array([0, 1, 2], np.intp), deadband=np.array([0.0, 0.5, 0.0]))
    v = np.array([1.0, 10.0, np.nan])
    m = tr.changed(v)
    assert m.tolist() == [True, True, False]  # never written: changed; NaN: not computed
    tr.commit(v, m)
    assert tr.changed(np.array([1.0, 10.4, np.nan])).tolist() == [False, False, False]
    assert tr.changed(np.array([1.5, 10.6, 3.0])).tolist() == [True, True, True]
    tr.forget()
    assert tr.changed(np.array([1.0, 10.0, 1.0])).all()


def test_output_tracker_and_the_engine_share_one_change_detection():
    tr = OutputTracker(np.array([0, 1], np.intp), deadband=np.array([0.0, 1.0]))
    tr.commit(np.array([1.0, 5.0]), np.array([True, True]))
    v = np.array([1.0, 6.5])
    mask = np.zeros(2, np.bool_)
    n = _kernels.changed_outputs(v, tr.last, tr.deadband, mask)
    assert tr.changed(v).tolist() == mask.tolist() == [False, True] and n == 1


def test_typed_values_follow_the_tag_type(image):
    image.ingest(result([6], [7]))
    assert image.get("count").value == 7 and type(image.get("count").value) is int
    opc = TagSpec(name="n", device="d", address=parse_address("opcua", "ns=2;s=N"))
    img = ProcessImage([opc])  # no storage type: stays float (used to raise AttributeError)
    img.ingest(result([0], [3]))
    assert img.get("n").value == 3.0 and type(img.get("n").value) is float
