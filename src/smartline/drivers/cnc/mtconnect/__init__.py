"""MTConnect agents over HTTP (``mtconnect+http://host:port[/device]``): probe, current,
sample with sequence tracking and gap recovery, streaming push, safe XML."""

from ._driver import MtConnectDriver, MtConnectPlan, Target

__all__ = ["MtConnectDriver", "MtConnectPlan", "Target"]
