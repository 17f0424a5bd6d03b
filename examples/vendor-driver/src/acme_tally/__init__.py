"""smartline driver for ACME Tally counting stations — the worked example of a driver that
an equipment vendor ships as its own package (see docs/how-to/write-a-driver.md).

Modules: :mod:`acme_tally.family` (the plug-in smartline loads: schemes, options, grammar,
profiles), :mod:`acme_tally.address` (the address grammar), :mod:`acme_tally.driver` (the
driver, imported only when a device is used) and :mod:`acme_tally.sim` (the vendor's own
simulator, which shares no code with the driver). Nothing is imported here, so that
``python -m acme_tally.sim`` loads neither smartline nor the driver.
"""

__version__ = "0.1.0"
