"""CloudNativePG 1.30's own rules about configuration, checked early so a refusal is clear and immediate.

Each list is CNPG's, read in its v1.30.0 source:
- FIXED_PARAMETERS: `FixedConfigurationParameters` in pkg/postgres/configuration.go (both the "fixed" ones,
  managed by the operator, and the "blocked" ones, which must keep their default). CNPG's validating
  webhook refuses them ("Can't set fixed configuration parameter"; internal/webhook/v1/cluster_webhook.go).
- PGBOUNCER_PARAMETERS: `AllowedPgbouncerGenericConfigurationParameters` in
  internal/webhook/v1/pooler_webhook.go ("Invalid or reserved parameter" otherwise).
Whether a change needs a restart comes from PostgreSQL itself (pg_contexts.py, pg_settings.context).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from cnpg_mcp_api.pg_contexts import PG_SETTING_CONTEXTS

FIXED_PARAMETERS = frozenset({
    "allow_system_table_mods", "archive_mode", "bonjour", "bonjour_name", "cluster_name", "config_file",
    "data_directory", "data_sync_retry", "event_source", "external_pid_file", "hba_file", "hot_standby",
    "ident_file", "jit_provider", "listen_addresses", "logging_collector", "port", "primary_conninfo",
    "primary_slot_name", "recovery_target", "recovery_target_action", "recovery_target_inclusive",
    "recovery_target_lsn", "recovery_target_name", "recovery_target_time", "recovery_target_timeline",
    "recovery_target_xid", "restore_command", "shared_preload_libraries", "temp_tablespaces",
    "unix_socket_directories", "unix_socket_group", "unix_socket_permissions",
    "archive_cleanup_command", "archive_command", "log_destination", "log_directory", "log_file_mode",
    "log_filename", "log_rotation_age", "log_rotation_size", "log_truncate_on_rotation",
    "pg_failover_slots.primary_dsn", "pg_failover_slots.standby_slot_names", "promote_trigger_file",
    "recovery_end_command", "recovery_min_apply_delay", "restart_after_crash", "ssl", "ssl_ca_file",
    "ssl_cert_file", "ssl_crl_file", "ssl_dh_params_file", "ssl_ecdh_curve", "ssl_key_file",
    "ssl_passphrase_command", "ssl_passphrase_command_supports_reload", "ssl_prefer_server_ciphers",
    "stats_temp_directory", "synchronous_standby_names", "synchronized_standby_slots", "syslog_facility",
    "syslog_ident", "syslog_sequence_numbers", "syslog_split_messages",
})

PGBOUNCER_PARAMETERS = frozenset({
    "application_name_add_host", "auth_type", "autodb_idle_timeout", "cancel_wait_timeout",
    "client_idle_timeout", "client_login_timeout", "client_tls_ciphers", "client_tls_sslmode",
    "client_tls13_ciphers", "default_pool_size", "disable_pqexec", "dns_max_ttl", "dns_nxdomain_ttl",
    "idle_transaction_timeout", "ignore_startup_parameters", "listen_backlog", "log_connections",
    "log_disconnections", "log_pooler_errors", "log_stats", "max_client_conn", "max_db_connections",
    "max_packet_size", "max_prepared_statements", "max_user_connections", "min_pool_size", "pkt_buf",
    "query_timeout", "query_wait_timeout", "reserve_pool_size", "reserve_pool_timeout", "sbuf_loopcnt",
    "server_check_delay", "server_check_query", "server_connect_timeout", "server_fast_close",
    "server_idle_timeout", "server_lifetime", "server_login_retry", "server_reset_query",
    "server_reset_query_always", "server_round_robin", "server_tls_ciphers", "server_tls13_ciphers",
    "server_tls_protocols", "server_tls_sslmode", "stats_period", "suspend_timeout", "tcp_defer_accept",
    "tcp_socket_buffer", "tcp_keepalive", "tcp_keepcnt", "tcp_keepidle", "tcp_keepintvl", "tcp_user_timeout",
    "track_extra_parameters", "verbose",
})

Effect = Literal["reload", "restart"]
RESTART_CONTEXTS = frozenset({"postmaster"})
# Where CNPG's images keep the major version: ghcr.io/cloudnative-pg/postgresql:16, :16.4-bookworm, …
_IMAGE_MAJOR = re.compile(r":(\d+)(?:[.\-_][^/]*)?(?:@sha256:[0-9a-f]+)?$")


def fixed_parameters(parameters: Mapping[str, str] | set[str] | frozenset[str]) -> list[str]:
    """The names CNPG refuses to take from a user, sorted."""
    return sorted(name for name in parameters if name in FIXED_PARAMETERS)


def unknown_pgbouncer_parameters(parameters: Mapping[str, str]) -> list[str]:
    return sorted(name for name in parameters if name not in PGBOUNCER_PARAMETERS)


@dataclass(frozen=True)
class ParameterEffect:
    name: str
    context: str  # pg_settings.context, or "unknown" (an extension's or a misspelt name)
    effect: Effect


def parameter_effect(name: str) -> ParameterEffect:
    """Whether changing `name` is applied by a reload or needs a restart (unknown names: restart, to be safe)."""
    context = PG_SETTING_CONTEXTS.get(name) or next(
        (c for known, c in PG_SETTING_CONTEXTS.items() if known.lower() == name.lower()), "unknown")
    return ParameterEffect(name, context, "reload" if context not in RESTART_CONTEXTS | {"unknown"} else "restart")


def image_major(image: str | None) -> int | None:
    """The PostgreSQL major version in an image reference's tag (None when the tag does not say)."""
    match = _IMAGE_MAJOR.search(image or "")
    return int(match.group(1)) if match else None


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_FACTORS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity_bytes(quantity: str) -> Decimal | None:
    """A Kubernetes storage quantity (10Gi, 500M, 1.5Ti) in bytes; None when it is not one."""
    match = _QUANTITY.match(quantity.strip())
    return Decimal(match.group(1)) * _FACTORS[match.group(2)] if match else None
