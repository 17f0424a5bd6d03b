"""smartline.hil."""
