"""Public outputs of an alert: the poster (PNG) and CAP 1.2 (message, Atom feed, reader).

Everything here is pure: it takes plain values (dataclasses) and returns bytes or readings, so the
web layer, the chat channels and the report can all use it without a database or a clock.
"""
