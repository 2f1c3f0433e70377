"""Ready-made diagnostic queries: each a named, fixed SELECT over PostgreSQL's statistics views.

They run through the same guard and executor as any agent's SQL (the role needs pg_monitor, nothing more).
Query texts of other sessions are clipped and their passwords redacted by the tool.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    sql: str


CHECKS: tuple[Check, ...] = (
    Check("long_running_queries", "Statements and transactions running for more than 5 seconds, longest first",
          """SELECT pid, usename AS user, datname AS database, state,
       extract(epoch FROM now() - query_start)::bigint AS query_seconds,
       extract(epoch FROM now() - xact_start)::bigint AS transaction_seconds,
       wait_event_type, wait_event, left(query, 300) AS query
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND state <> 'idle' AND pid <> pg_backend_pid()
   AND (now() - query_start > interval '5 seconds' OR now() - xact_start > interval '5 seconds')
 ORDER BY coalesce(xact_start, query_start)"""),
    Check("blocking_locks", "Sessions waiting on a lock and the sessions blocking them",
          """SELECT waiting.pid AS waiting_pid, waiting.usename AS waiting_user,
       extract(epoch FROM now() - waiting.query_start)::bigint AS waiting_seconds,
       left(waiting.query, 200) AS waiting_query,
       blocker.pid AS blocking_pid, blocker.usename AS blocking_user, blocker.state AS blocking_state,
       left(blocker.query, 200) AS blocking_query
  FROM pg_stat_activity AS waiting
  CROSS JOIN LATERAL unnest(pg_blocking_pids(waiting.pid)) AS blocked_by(pid)
  JOIN pg_stat_activity AS blocker ON blocker.pid = blocked_by.pid
 ORDER BY waiting_seconds DESC NULLS LAST"""),
    Check("connections_by_state", "Client connections per database and state, against max_connections",
          """SELECT coalesce(datname, '') AS database, coalesce(state, 'unknown') AS state, count(*) AS connections,
       current_setting('max_connections')::int AS max_connections
  FROM pg_stat_activity
 WHERE backend_type = 'client backend'
 GROUP BY 1, 2
 ORDER BY 3 DESC"""),
    Check("database_sizes", "Size of every database, largest first",
          """SELECT datname AS database, pg_database_size(oid) AS bytes,
       pg_size_pretty(pg_database_size(oid)) AS size
  FROM pg_database
 WHERE datallowconn
 ORDER BY 2 DESC"""),
    Check("table_sizes", "The 30 largest tables of the database (with indexes and TOAST), and their live/dead rows",
          """SELECT s.schemaname AS schema, s.relname AS table,
       pg_total_relation_size(s.relid) AS total_bytes, pg_size_pretty(pg_total_relation_size(s.relid)) AS total,
       pg_relation_size(s.relid) AS table_bytes, s.n_live_tup AS live_rows, s.n_dead_tup AS dead_rows,
       s.last_autovacuum, s.last_autoanalyze
  FROM pg_stat_user_tables AS s
 ORDER BY 3 DESC
 LIMIT 30"""),
    Check("index_usage", "Index scans per index of the database, least used first (unused ones flagged)",
          """SELECT s.schemaname AS schema, s.relname AS table, s.indexrelname AS index, s.idx_scan AS scans,
       pg_relation_size(s.indexrelid) AS bytes, i.indisunique AS is_unique,
       (s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary) AS unused
  FROM pg_stat_user_indexes AS s
  JOIN pg_index AS i ON i.indexrelid = s.indexrelid
 ORDER BY s.idx_scan, 5 DESC
 LIMIT 100"""),
    Check("replication", "Streaming replicas connected to this instance and how far behind they are",
          """SELECT application_name, client_addr::text AS client_addr, state, sync_state,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint END AS replay_lag_bytes,
       extract(epoch FROM write_lag) AS write_lag_seconds, extract(epoch FROM flush_lag) AS flush_lag_seconds,
       extract(epoch FROM replay_lag) AS replay_lag_seconds
  FROM pg_stat_replication
 ORDER BY application_name"""),
    Check("replication_slots", "Replication slots, whether active, and the WAL each one holds back",
          """SELECT slot_name, slot_type, database, active, wal_status,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
                       restart_lsn)::bigint AS retained_bytes
  FROM pg_replication_slots
 ORDER BY retained_bytes DESC NULLS LAST"""),
    Check("recovery_status", "Whether this instance is a replica, and its replay delay",
          """SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END
         AS replay_delay_seconds,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()::text END AS receive_lsn,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END AS replay_lsn"""),
    Check("changed_settings", "Settings whose value does not come from PostgreSQL's defaults",
          """SELECT name, setting, unit, source, boot_val AS default_value, pending_restart
  FROM pg_settings
 WHERE source NOT IN ('default', 'override', 'client', 'session')
 ORDER BY name"""),
)
BY_NAME = {check.name: check for check in CHECKS}
