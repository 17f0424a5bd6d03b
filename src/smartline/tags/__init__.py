"""smartline.tags."""
