"""docs/how-to/write-a-driver.md and the example's README stay true: the files they point
to exist, and the hooks the how-to names are the ones the example driver fills."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from acme_tally.driver import TallyDriver

from smartline.core import DriverBase

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "docs" / "how-to" / "write-a-driver.md",
        ROOT / "examples" / "vendor-driver" / "README.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc: Path) -> None:
    targets = [t for t in LINK.findall(doc.read_text(encoding="utf-8"))
               if "://" not in t]
    assert targets
    missing = [t for t in targets if not (doc.parent / t).exists()]
    assert not missing, f"{doc.name} links to missing files: {missing}"


def test_the_hooks_the_how_to_lists_are_the_ones_the_driver_fills() -> None:
    text = DOCS[0].read_text(encoding="utf-8")
    filled = {n for n in vars(TallyDriver) if n.startswith("_") and not n.startswith("__")
              and callable(getattr(DriverBase, n, None))}
    assert filled == {"_connect", "_close", "_plan", "_read", "_prepare_write", "_write",
                      "_pushes", "_subscribe", "_unsubscribe", "_stats"}
    for hook in filled | {"_refine"}:
        assert f"`{hook}" in text, hook
