"""OpenTelemetry tracing, off unless the standard environment variables ask for it.

The MCP SDK already opens a span for every request (tools/call <tool>, with mcp.method.name and
gen_ai.tool.name) through the OpenTelemetry API; without a configured SDK those spans cost nothing
and go nowhere. Setting OTEL_TRACES_EXPORTER (otlp or console) or OTEL_EXPORTER_OTLP_ENDPOINT /
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT installs a tracer provider exporting them; the exporter reads
the rest of its settings (headers, protocol, timeouts) from the standard variables itself.
The SDK and exporter come with the optional extra `cnpg-mcp[otel]`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)

SERVICE_NAME = "cnpg-mcp-gateway"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
EXPORTERS = ("otlp", "console")


def requested_exporter(environ: Mapping[str, str]) -> str | None:
    """The exporter the environment asks for, or None (tracing off): nothing set, or OTEL_TRACES_EXPORTER=none."""
    chosen = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if chosen == "none" or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if chosen:
        return chosen
    return "otlp" if any(environ.get(name) for name in ENDPOINT_VARIABLES) else None


def configure_from_environment(environ: Mapping[str, str] | None = None, service_name: str = SERVICE_NAME) -> bool:
    """Install an exporting tracer provider when the environment asks for one; True when installed."""
    env = os.environ if environ is None else environ
    exporter_name = requested_exporter(env)
    if exporter_name is None:
        return False
    if exporter_name not in EXPORTERS:
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported (use one of %s): tracing stays off",
                    exporter_name, ", ".join(EXPORTERS))
        return False
    try:  # the optional extra: imported only when tracing is asked for
        from opentelemetry import trace  # noqa: PLC0415
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError:
        log.warning("tracing was asked for (OTEL_* variables) but the OpenTelemetry SDK is not installed: "
                    "install cnpg-mcp[otel]; tracing stays off")
        return False
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter(out=sys.stderr)  # stdout is the MCP stream with --transport stdio
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
        except ImportError:
            log.warning("the OTLP exporter is not installed: install cnpg-mcp[otel]; tracing stays off")
            return False
        exporter = OTLPSpanExporter()  # endpoint, headers, timeout: from the OTEL_EXPORTER_OTLP_* variables
    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the default name only fills a gap.
    named = bool(env.get("OTEL_SERVICE_NAME")) or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    resource = Resource.create() if named else Resource.create({"service.name": service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("OpenTelemetry tracing on: %s exporter, service %s", exporter_name,
             provider.resource.attributes.get("service.name"))
    return True
