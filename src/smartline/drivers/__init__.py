"""Protocol drivers, one subpackage per family; loaded lazily through the registry."""
