"""callbox: a conferencing appliance for Raspberry Pi kits."""

__version__ = "0.1.0"
