"""CNC controllers: :mod:`smartline.drivers.cnc.grbl` (GRBL over a serial line) and
:mod:`smartline.drivers.cnc.mtconnect` (MTConnect agents over HTTP)."""
