"""The XML session descriptor: schema, build, parse, offer/answer."""
