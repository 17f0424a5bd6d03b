"""smartline.drivers."""
