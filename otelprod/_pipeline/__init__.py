"""The telemetry pipeline: everything in otelprod that touches the OpenTelemetry SDK.

``init()`` (``otelprod._init``) composes it: the settings, the resource, the
providers with their processors and views, the OTLP exporters with the disk
spool behind them (``spool/``), the export status, fork handling, the console
exporters, the scrubbing processors and the doctor's export checks. The
feature packages never import it: they talk to the OpenTelemetry API only.
"""
