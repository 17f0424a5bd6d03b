"""smartline.testing."""
