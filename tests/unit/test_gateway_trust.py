"""Gateway trust boundaries, pure logic: identity prefixes, mirror bounds, cached readiness, safe start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp.server.mcpserver.exceptions import ToolError

from mcp_gateway import auth, errors, identity
from mcp_gateway.config import GatewayConfig, config_problem, parse_args
from mcp_gateway.k8s import Readiness
from mcp_gateway.watch_cache import MirrorBook

OIDC = identity.Prefixes("oidc:", "oidc:")
REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- identity mapping
def test_token_names_are_prefixed() -> None:
    mapped = identity.map_identity("alice", ["dba", "", "everyone"], OIDC)
    assert mapped == identity.Identity("oidc:alice", ("oidc:dba", "oidc:everyone"))


@pytest.mark.parametrize(("user", "groups"), [
    ("system:admin", []),
    ("system:serviceaccount:kube-system:default", []),
    ("alice", ["dba", "system:masters"]),
    ("alice", ["system:authenticated"]),
])
def test_reserved_names_in_a_token_are_refused(user: str, groups: list[str]) -> None:
    with pytest.raises(identity.IdentityRefused, match="system:"):
        identity.map_identity(user, groups, OIDC)
    with pytest.raises(identity.IdentityRefused):  # with prefixing switched off too
        identity.map_identity(user, groups, identity.Prefixes.of("-", "-"))


def test_no_prefix_keeps_ordinary_names() -> None:
    assert identity.map_identity("alice", ["dba"], identity.Prefixes.of("-", "")) == identity.Identity(
        "alice", ("dba",))
    with pytest.raises(identity.IdentityRefused):
        identity.map_identity("", [], OIDC)


def test_prefixes_of_defaults_and_flags() -> None:
    config = parse_args([])
    assert config.oidc_prefixes == identity.Prefixes("oidc:", "oidc:")
    assert config.token_prefixes == identity.Prefixes("token:", "token:")
    custom = parse_args(["--oidc-username-prefix", "corp#", "--oidc-groups-prefix", "-",
                         "--token-username-prefix", "-", "--token-groups-prefix", "static:"])
    assert custom.oidc_prefixes == identity.Prefixes("corp#", "")
    assert custom.token_prefixes == identity.Prefixes("", "static:")


def test_a_system_prefix_is_refused_at_start_up() -> None:
    found = config_problem(GatewayConfig(oidc_groups_prefix="system:"))
    assert found is not None and "--oidc-groups-prefix" in found
    with pytest.raises(SystemExit):
        parse_args(["--token-username-prefix", "system:serviceaccount:"])


def test_static_token_with_a_reserved_group_is_marked_refused() -> None:
    verifier = auth.StaticTokenVerifier(auth.parse_tokens(["t1,alice,system:masters", "t2,system:admin", "t3,bob"]))
    for token in ("t1", "t2"):
        found = anyio.run(verifier.verify_token, token)
        assert found is not None and found.claims is not None
        assert "system:" in found.claims[identity.REFUSED_CLAIM]
        assert found.claims["username"] == "" and found.claims["groups"] == []
    ordinary = anyio.run(verifier.verify_token, "t3")
    assert ordinary is not None and ordinary.claims == {"iss": "static-token", "username": "token:bob", "groups": []}


# ---------------------------------------------------------------- safe start-up
def test_http_on_a_public_address_needs_a_host_allow_list() -> None:
    found = config_problem(GatewayConfig(transport="http", host="0.0.0.0", tokens_env="t"))
    assert found is not None and "--allowed-host" in found and "--allow-any-host" in found
    assert config_problem(GatewayConfig(transport="http", host="0.0.0.0", tokens_env="t",
                                        allowed_hosts=("cnpg-mcp.example.com:*",))) is None
    assert config_problem(GatewayConfig(transport="http", host="0.0.0.0", tokens_env="t",
                                        allow_any_host=True)) is None
    assert config_problem(GatewayConfig(transport="http", host="127.0.0.1", tokens_env="t")) is None
    assert parse_args(["--allow-any-host"]).allow_any_host is True


def test_the_command_line_refuses_a_public_address_without_allowed_hosts(monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CNPG_MCP_TOKENS", "t0ken")
    with pytest.raises(SystemExit):
        parse_args(["--transport", "http", "--host", "0.0.0.0"])
    assert "needs a Host allow-list" in capsys.readouterr().err
    assert parse_args(["--transport", "http", "--host", "0.0.0.0", "--allowed-host", "gw.example:*"]).allowed_hosts


def test_watch_cache_bounds_must_be_positive() -> None:
    assert config_problem(GatewayConfig(watch_cache_max_mirrors=0)) is not None
    config = parse_args(["--watch-cache", "--watch-cache-max-mirrors", "8", "--watch-cache-idle-seconds", "30"])
    assert (config.watch_cache_max_mirrors, config.watch_cache_idle_seconds) == (8, 30.0)
    assert parse_args([]).watch_cache_max_mirrors == 64


def test_without_credentials_one_clear_line_and_a_failure(tmp_path: Path) -> None:
    """No kubeconfig anywhere and not in a pod: what was looked for, no traceback, non-zero exit."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "mcp_gateway"], capture_output=True, text=True, timeout=60,
                          check=False, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for looked_for in ("KUBECONFIG", str(tmp_path / ".kube" / "config"), "KUBERNETES_SERVICE_HOST",
                       "/var/run/secrets/kubernetes.io/serviceaccount/token"):
        assert looked_for in lines[0], lines[0]

    missing = tmp_path / "nowhere.yaml"
    done = subprocess.run([sys.executable, "-m", "mcp_gateway"], capture_output=True, text=True, timeout=60,
                          check=False, env={**env, "KUBECONFIG": str(missing)}, cwd=tmp_path,
                          stdin=subprocess.DEVNULL)
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert str(missing) in done.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    done = subprocess.run([sys.executable, "-m", "mcp_gateway", "--kubeconfig", str(broken)], capture_output=True,
                          text=True, timeout=60, check=False, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"kubeconfig {broken} is not usable" in done.stderr


# ---------------------------------------------------------------- mirror bounds
def test_mirror_book_evicts_the_least_recently_read_over_capacity() -> None:
    book = MirrorBook(capacity=2, idle_seconds=60)
    a, b, c = (("g", "v", "p", ns) for ns in ("a", "b", "c"))
    assert book.touch(a, 0) == [] and book.touch(b, 1) == []
    assert book.touch(a, 2) == []  # a read again: b is now the oldest
    assert book.touch(c, 3) == [b]
    assert a in book and c in book and b not in book and len(book) == 2


def test_mirror_book_expires_idle_mirrors() -> None:
    book = MirrorBook(capacity=10, idle_seconds=60)
    a, b = ("g", "v", "p", "a"), ("g", "v", "p", "b")
    book.touch(a, 0)
    book.touch(b, 30)
    assert book.expire(59) == []
    assert book.expire(60) == [a]
    assert book.expire(200) == [b]
    assert len(book) == 0


# ---------------------------------------------------------------- readiness
def test_readiness_answers_from_recent_observations() -> None:
    now = [100.0]
    readiness = Readiness(ttl=10, clock=lambda: now[0])
    assert readiness.fresh() is None  # nothing seen yet: a check is due
    readiness.record(True)
    now[0] = 109.9
    assert readiness.fresh() is True
    readiness.record(False)
    assert readiness.fresh() is False
    now[0] = 120.0
    assert readiness.fresh() is None


# ---------------------------------------------------------------- error codes
def test_transport_failures_are_retryable_coded_errors() -> None:
    error = errors.from_transport_exception(ConnectionRefusedError(111, "Connection refused"), "listing clusters")
    assert isinstance(error, ToolError)
    assert str(error).startswith(f"[{errors.UNAVAILABLE}] listing clusters")
    assert "retryable" in str(error)
