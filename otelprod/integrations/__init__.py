"""Other logging libraries into the OTLP log pipeline: structlog and loguru.

Their records are handed to the OTLP log bridge of ``otelprod.init()`` (the
handler stdlib ``logging`` records go through), so they carry the active trace
context, pass the same filters and level, and are scrubbed like every other
record. See :mod:`otelprod.integrations.structlog` and
:mod:`otelprod.integrations.loguru`; neither library is imported until you
import its module.
"""
