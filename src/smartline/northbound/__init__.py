"""North-bound (DESIGN §1, issue #13): the line reports to the plant's platforms — a
Sparkplug B edge node with on-disk store-and-forward, an OPC UA server for the line — and
what the retrofit achieved: KPIs and the digitalisation report. Names load on first use."""

from __future__ import annotations
