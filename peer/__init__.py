"""The peer daemon: registration loop, UAC/UAS, local stores, CLI, Python API."""
