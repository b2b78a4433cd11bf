"""The durable export spool: OTLP requests kept on disk while the collector is away.

``store`` is the spool directory (segment files, claims, the bound); ``link``
is one signal's way to the collector, sending now or spooling and replaying.
"""
