"""Line files and device profiles, loaded into frozen typed configuration.

``load_line`` reads a line file (DESIGN §3) and everything it refers to; ``load_profile``
reads a device profile (``drivers/vendor/model.yaml``); ``check_file`` validates any
smartline file for ``smartline check``. Every problem is reported, as
``FILE:LINE:COL: key.path: message``, in one :class:`~smartline.core.ConfigError`.
"""

from ._check import KINDS, CheckOptions, FileKind, check_file
from ._common import data_dir
from ._line import load_line
from ._lineproto import LineProtocol
from ._profile import find_profile, load_profile
from ._schema import DeviceOptions, NoOptions, SecurityModel, UserModel
from ._types import (
    DeviceConfig,
    LineConfig,
    Profile,
    ProfileManual,
    ProfilePoint,
    TaskConfig,
    WatchdogConfig,
)

__all__ = [
    "KINDS",
    "CheckOptions",
    "DeviceConfig",
    "DeviceOptions",
    "FileKind",
    "LineConfig",
    "LineProtocol",
    "NoOptions",
    "Profile",
    "ProfileManual",
    "ProfilePoint",
    "SecurityModel",
    "TaskConfig",
    "UserModel",
    "WatchdogConfig",
    "check_file",
    "data_dir",
    "find_profile",
    "load_line",
    "load_profile",
]
