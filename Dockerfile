# One image, two entry points: `cnpg-mcp-server` (MCP gateway) and `cnpg-mcp-operator`.
# Build: docker build -t cnpg-mcp:0.1.0 .
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cnpg_mcp_api ./cnpg_mcp_api
COPY mcp_gateway ./mcp_gateway
COPY operator ./operator
RUN python -m venv /opt/cnpg-mcp \
 && /opt/cnpg-mcp/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/cnpg-mcp/bin/pip install --no-cache-dir .

FROM python:3.11.14-slim-bookworm
# No compilers or build tools in the final image: only the virtual environment is copied.
COPY --from=build /opt/cnpg-mcp /opt/cnpg-mcp
RUN groupadd --gid 10001 cnpg-mcp && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin cnpg-mcp
ENV PATH=/opt/cnpg-mcp/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 4204 8080
CMD ["cnpg-mcp-server", "--help"]
