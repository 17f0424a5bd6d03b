"""smartline.cycle."""
