"""The control server: registrar, location, stateful proxy, session registry, store."""
