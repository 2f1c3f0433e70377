"""The OIDC resource settings of `cnpg-mcp-server`: the resource URL is the token audience."""

from __future__ import annotations

import pytest

from mcp_gateway import auth
from mcp_gateway.config import GatewayConfig, config_problem, parse_args

pytestmark = pytest.mark.unit
OIDC = {"transport": "http", "oidc_issuer": "https://idp.example.test", "oidc_jwks_url": "https://idp.example.test/jwks"}


def test_oidc_without_a_resource_url_is_refused() -> None:
    problem = config_problem(GatewayConfig(**OIDC, oidc_audience="cnpg-mcp-client-id"))  # type: ignore[arg-type]
    assert problem is not None and "--resource-url" in problem


def test_an_audience_other_than_the_resource_is_refused() -> None:
    problem = config_problem(GatewayConfig(**OIDC, resource_url="https://mcp.example.test/mcp",  # type: ignore[arg-type]
                                           oidc_audience="https://elsewhere.example.test/mcp"))
    assert problem is not None and "differs from --resource-url" in problem


def test_the_resource_url_is_the_audience_and_is_announced() -> None:
    config = parse_args(["--transport", "http", "--oidc-issuer", "https://idp.example.test", "--oidc-jwks-url",
                         "https://idp.example.test/jwks", "--resource-url", "https://mcp.example.test/mcp",
                         "--oidc-scope", "cnpg-mcp", "--oidc-scope", "cnpg-mcp.write"])
    assert config.token_audience == config.public_resource_url == "https://mcp.example.test/mcp"
    verifier, settings = auth.build_auth(config)
    assert isinstance(verifier, auth.JWTTokenVerifier) and verifier.audience == "https://mcp.example.test/mcp"
    assert settings is not None and settings.validate_token_resource
    assert str(settings.resource_server_url) == "https://mcp.example.test/mcp"
    assert settings.required_scopes == ["cnpg-mcp", "cnpg-mcp.write"]
    route = auth.root_metadata_route(settings)
    assert route is not None and route.path == "/.well-known/oauth-protected-resource"


def test_a_url_audience_still_serves_as_the_resource() -> None:
    config = GatewayConfig(**OIDC, oidc_audience="https://mcp.example.test/mcp")  # type: ignore[arg-type]
    assert config_problem(config) is None
    assert config.public_resource_url == "https://mcp.example.test/mcp"


def test_static_tokens_alone_announce_no_authorization_server() -> None:
    _, settings = auth.build_auth(GatewayConfig(transport="http", tokens_env="t0ken"))
    assert settings is not None and settings.resource_server_url is None
    assert auth.root_metadata_route(settings) is None
