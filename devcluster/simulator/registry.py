"""The registry: kind → handler, one small module per kind the simulation plays.

To teach the simulator a new CNPG kind (Backup, ScheduledBackup, Pooler...): write one module with a
class following `context.Handler` (its queue kind, the watches that feed it, an idempotent
`reconcile`), built from a `context.Context`, and add the class to `HANDLER_TYPES`.
"""

from __future__ import annotations

from collections.abc import Callable

from devcluster.simulator.backups import ArchivingHandler, BackupHandler
from devcluster.simulator.clusters import ClusterHandler
from devcluster.simulator.context import Context, Handler
from devcluster.simulator.database_roles import DatabaseRoleHandler
from devcluster.simulator.databases import DatabaseHandler
from devcluster.simulator.pods import InstancePodHandler
from devcluster.simulator.poolers import PoolerHandler
from devcluster.simulator.scheduled_backups import ScheduledBackupHandler
from devcluster.simulator.secrets import SecretHandler

HANDLER_TYPES: tuple[Callable[[Context], Handler], ...] = (
    ClusterHandler,  # Cluster: Services, app Secret, bootstrap, managed roles, instance Pods, status
    DatabaseRoleHandler,  # DatabaseRole: one role, finalizer, reclaim policy
    DatabaseHandler,  # Database: one database, schemas, extensions, finalizer, reclaim policy
    InstancePodHandler,  # the kubelet's part for the instance Pods: Running status, final deletion
    SecretHandler,  # password Secrets labelled cnpg.io/reload: re-enqueue the objects using them
    BackupHandler,  # Backup (plugin method): phases and a real copy of the Cluster's database
    ArchivingHandler,  # WAL archiving via the Barman Cloud plugin: ContinuousArchiving, recovery window
    ScheduledBackupHandler,  # ScheduledBackup: Backups on its six-field cron schedule
    PoolerHandler,  # Pooler: its Deployment and Service (named like it), instances and phase
)


def build_handlers(ctx: Context) -> dict[str, Handler]:
    """kind → handler, for every kind the simulation plays."""
    handlers = [make(ctx) for make in HANDLER_TYPES]
    return {handler.kind: handler for handler in handlers}
