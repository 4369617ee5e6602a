"""The peer-to-peer data channel: TLS 1.3 pinned to descriptor fingerprints, typed frames."""
