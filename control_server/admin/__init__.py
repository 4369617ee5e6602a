"""The admin surface of the control server: the HTTP API with its dashboard, event stream and
metrics, and the `sipsync-admin` command over a data directory or that API. Nothing here is
imported by the SIP path; the command line composes the two."""
