"""OAuth discovery the way a remote MCP client does it (MCP authorization spec, RFC 9728): 401 → the
`resource_metadata` named in `WWW-Authenticate` → the metadata → the issuer's discovery document → a token
for this resource, which works; tokens for another resource, or without the scope, do not."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from devcluster.controlplane import ControlPlane, free_port
from mcp_gateway.config import GatewayConfig
from tests.integration.gateway_helpers import ok
from tests.integration.test_gateway_http import serve, session

pytestmark = pytest.mark.anyio
SCOPE = "cnpg-mcp"
PROBE = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Issuer:
    """A local OpenID provider: discovery document and JWKS over HTTP, and a key to mint its tokens."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.jwks_url = f"{self.url}/jwks.json"
        self._documents = {
            "/jwks.json": {"keys": [{**jwk, "kid": "issuer-key", "use": "sig", "alg": "RS256"}]},
            "/.well-known/openid-configuration": {
                "issuer": self.url, "jwks_uri": self.jwks_url, "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token", "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"], "scopes_supported": [SCOPE]},
        }
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                document = issuer._documents.get(self.path)
                body = json.dumps(document).encode()
                self.send_response(200 if document else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                return

        return Handler

    def mint(self, *, audience: str, scope: str = SCOPE, sub: str = "dana") -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": audience, "sub": sub, "iat": now, "exp": now + 300, "scope": scope}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "issuer-key"})

    def close(self) -> None:
        self._httpd.shutdown()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer()
    yield running
    running.close()


def resource_metadata_url(answer: httpx2.Response) -> str:
    assert answer.status_code == 401, answer.text
    challenge = answer.headers["www-authenticate"]
    found = re.search(r'resource_metadata="([^"]+)"', challenge)
    assert found, challenge
    return found.group(1)


async def test_a_client_discovers_the_issuer_and_only_tokens_for_this_resource_work(
    control_plane: ControlPlane, issuer: Issuer, namespace: str, tmp_path: Path,
) -> None:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    token_file = tmp_path / "tokens"
    token_file.write_text("static-token,erin\n")  # static tokens keep working beside OIDC
    config = GatewayConfig(transport="http", port=port, oidc_issuer=issuer.url, oidc_jwks_url=issuer.jwks_url,
                           resource_url=resource, oidc_scopes=(SCOPE,), token_file=token_file)
    async for url in serve(config, control_plane):
        async with httpx2.AsyncClient() as http:
            # 1. No token: 401, and the challenge says where to learn how to get one.
            metadata_url = resource_metadata_url(await http.post(f"{url}/mcp", json=PROBE, headers=MCP_HEADERS))
            assert metadata_url == f"{url}/.well-known/oauth-protected-resource/mcp"
            # 2. The protected-resource metadata names this resource, its issuer and the scope to ask for.
            metadata = (await http.get(metadata_url)).json()
            assert metadata["resource"] == resource
            assert [s.rstrip("/") for s in metadata["authorization_servers"]] == [issuer.url]
            assert metadata["scopes_supported"] == [SCOPE]
            assert metadata["bearer_methods_supported"] == ["header"]
            # Clients that got no header fall back to the root well-known path.
            assert (await http.get(f"{url}/.well-known/oauth-protected-resource")).json() == metadata
            # 3. The issuer's own discovery document (the client would now run the OAuth flow there).
            discovery = (await http.get(f"{metadata['authorization_servers'][0].rstrip('/')}"
                                        "/.well-known/openid-configuration")).json()
            assert discovery["issuer"] == issuer.url
            # 4. A token for another resource is refused, and the 401 again points at the metadata.
            elsewhere = issuer.mint(audience="https://other-service.example.test/mcp")
            refused = await http.post(f"{url}/mcp", json=PROBE,
                                      headers={**MCP_HEADERS, "Authorization": f"Bearer {elsewhere}"})
            assert resource_metadata_url(refused) == metadata_url
            # A token for this resource without the announced scope is forbidden.
            unscoped = issuer.mint(audience=resource, scope="openid")
            forbidden = await http.post(f"{url}/mcp", json=PROBE,
                                        headers={**MCP_HEADERS, "Authorization": f"Bearer {unscoped}"})
            assert forbidden.status_code == 403
            assert "insufficient_scope" in forbidden.headers["www-authenticate"]
        # 5. A token issued for this resource works for a real MCP client; so does the static token.
        for token in (issuer.mint(audience=resource), "static-token"):
            async with session(url, token) as mcp:
                ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))
