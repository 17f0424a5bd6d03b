"""smartline's own driver families, registered in the entry point group ``smartline.drivers``
exactly as a vendor's package registers its family (see ``examples/vendor-driver``).

Each module is light: grammar, options, schemes. The driver classes named in the schemes
import their protocol libraries and are imported only when a device is used.
"""
