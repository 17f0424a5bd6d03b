"""smartline.config."""
