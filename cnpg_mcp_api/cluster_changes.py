"""Pure: what a PgClusterRequest changes on its CNPG Cluster, what each change does, and what is refused.

One function for the operator (it applies `patch`) and the gateway (its dry run shows `changes`, each with
its effect, before anything is written). Owned fields: instances, the parameters the request lists (others
are left alone), resources, and, only when the request sets them, storage.size (grow only), the image
(postgresVersion/imageName: minor update, or in-place major upgrade; never down), pg_hba and synchronous
replication, and the node maintenance window. An adopting request owns instances and parameters only when
its raw spec sets them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnpg_mcp_api import constants
from cnpg_mcp_api.cnpg_rules import fixed_parameters, image_major, parameter_effect, quantity_bytes
from cnpg_mcp_api.models import DEFAULT_POSTGRES_VERSION, PgClusterRequestSpec

Json = dict[str, Any]
RELOAD = "reload"  # applied by PostgreSQL on a configuration reload, no downtime
RESTART = "restart"  # CNPG restarts every instance (replicas first, then a switchover or in-place primary restart)
MAJOR_UPGRADE = "major-upgrade"  # CNPG stops every instance and runs pg_upgrade: downtime
ONLINE = "online"  # no restart (scaling, volume expansion)
_SEVERITY = {ONLINE: 0, RELOAD: 1, RESTART: 2, MAJOR_UPGRADE: 3}
SYNCHRONOUS_KEYS = ("method", "number", "dataDurability", "failoverQuorum", "maxStandbyNamesFromCluster")


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any
    effect: str
    why: str = ""


@dataclass
class ClusterChanges:
    patch: Json = field(default_factory=dict)  # merge patch of the Cluster's spec
    changes: list[Change] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    @property
    def effect(self) -> str | None:
        """The most disruptive effect of all changes (None: nothing changes)."""
        return max((c.effect for c in self.changes), key=_SEVERITY.__getitem__, default=None)

    def summary(self) -> str:
        return "; ".join(f"{c.field} {c.old}→{c.new} ({c.effect})" for c in self.changes)


def image_for(spec: PgClusterRequestSpec) -> str:
    if spec.image_name:
        return spec.image_name
    return f"{constants.CNPG_IMAGE_REPOSITORY}:{spec.postgres_version or DEFAULT_POSTGRES_VERSION}"


def live_major(cluster: Mapping[str, Any]) -> int | None:
    """The major version of the Cluster's data: CNPG's status.pgDataImageInfo, else its image's tag."""
    info = ((cluster.get("status") or {}).get("pgDataImageInfo") or {}).get("majorVersion")
    return int(info) if info else image_major((cluster.get("spec") or {}).get("imageName"))


def synchronous_wire(spec: PgClusterRequestSpec) -> Json | None:
    return spec.synchronous.to_wire() if spec.synchronous is not None else None


def cluster_changes(raw: Mapping[str, Any], cluster: Mapping[str, Any]) -> ClusterChanges:
    """The request's raw spec against the live Cluster."""
    spec = PgClusterRequestSpec.model_validate(raw)
    explicit_only = bool(raw.get("adoptExisting"))
    live = cluster.get("spec") or {}
    live_pg = live.get("postgresql") or {}
    out = ClusterChanges()
    postgresql: Json = {}

    if (not explicit_only or "instances" in raw) and live.get("instances") != spec.instances:
        out.patch["instances"] = spec.instances
        out.changes.append(Change("instances", live.get("instances"), spec.instances, ONLINE))

    owned = spec.parameters if not explicit_only or "parameters" in raw else {}
    if fixed := fixed_parameters(owned):
        out.refusals.append(f"parameters {', '.join(fixed)} are fixed by CloudNativePG and cannot be set")
    live_parameters = live_pg.get("parameters") or {}
    changed = {k: v for k, v in owned.items() if live_parameters.get(k) != v}
    if changed:
        postgresql["parameters"] = changed
        for name, value in sorted(changed.items()):
            effect = parameter_effect(name)
            out.changes.append(Change(f"parameters.{name}", live_parameters.get(name), value, effect.effect,
                                      f"pg_settings.context {effect.context}"))

    if spec.pg_hba is not None and live_pg.get("pg_hba") != spec.pg_hba:
        postgresql["pg_hba"] = list(spec.pg_hba)
        out.changes.append(Change("pg_hba", live_pg.get("pg_hba"), spec.pg_hba, RELOAD))

    wanted_sync = synchronous_wire(spec)
    live_sync = live_pg.get("synchronous") or {}
    instances = spec.instances if not explicit_only or "instances" in raw else int(live.get("instances") or 1)
    if spec.synchronous is not None and spec.synchronous.number >= instances:
        out.refusals.append(f"synchronous.number {spec.synchronous.number} must be less than the number of "
                            f"instances ({instances}): a commit waits for that many standbys")
    if wanted_sync is not None and {k: live_sync.get(k) for k in SYNCHRONOUS_KEYS} != \
            {k: wanted_sync.get(k) for k in SYNCHRONOUS_KEYS}:
        postgresql["synchronous"] = {**{k: None for k in SYNCHRONOUS_KEYS if k in live_sync}, **wanted_sync}
        out.changes.append(Change("synchronous", live_sync or None, wanted_sync, RELOAD,
                                  "synchronous_standby_names is reloaded"))
    if postgresql:
        out.patch["postgresql"] = postgresql

    if spec.resources is not None and live.get("resources") != spec.resources.to_wire():
        out.patch["resources"] = spec.resources.to_wire()
        out.changes.append(Change("resources", live.get("resources"), spec.resources.to_wire(), RESTART,
                                  "new Pods (rolling update)"))

    _maintenance(spec, live.get("nodeMaintenanceWindow") or {}, out)
    if "storage" in raw:
        _storage(spec.storage.size, (live.get("storage") or {}).get("size"), out)
    if raw.get("postgresVersion") or raw.get("imageName"):
        _image(image_for(spec), cluster, out)
    return out


def maintenance_meaning(window: Mapping[str, Any]) -> str:
    """What a nodeMaintenanceWindow means to CloudNativePG, for the dry run."""
    if not window.get("inProgress"):
        return "node maintenance over: CloudNativePG protects the instances from node drains again"
    if window.get("reusePVC") is False:
        return ("node maintenance in progress: nodes can be drained; an instance on a drained node is recreated "
                "on another node with a NEW volume (cloned again; needs instances > 1)")
    return ("node maintenance in progress: nodes can be drained; an instance on a drained node waits for the "
            "node to come back and keeps its volume (reusePVC)")


def _maintenance(spec: PgClusterRequestSpec, live: Mapping[str, Any], out: ClusterChanges) -> None:
    if spec.node_maintenance_window is None:
        return
    wanted = spec.node_maintenance_window.to_wire()
    if all(live.get(key) == value for key, value in wanted.items()):
        return
    out.patch["nodeMaintenanceWindow"] = wanted
    out.changes.append(Change("nodeMaintenanceWindow", dict(live) or None, wanted, ONLINE,
                              maintenance_meaning({**live, **wanted})))


def _storage(wanted: str, current: str | None, out: ClusterChanges) -> None:
    want, have = quantity_bytes(wanted), quantity_bytes(current or "")
    if want is None or have is None or want == have:
        return
    if want < have:
        out.refusals.append(f"storage.size cannot shrink from {current} to {wanted} (CloudNativePG only grows "
                            "volumes)")
        return
    out.patch["storage"] = {"size": wanted}
    out.changes.append(Change("storage.size", current, wanted, ONLINE, "volume expansion (the StorageClass "
                                                                        "must allow it)"))


def _image(wanted: str, cluster: Mapping[str, Any], out: ClusterChanges) -> None:
    live = cluster.get("spec") or {}
    if live.get("imageCatalogRef"):
        out.refusals.append("the Cluster takes its image from an image catalog (spec.imageCatalogRef): change "
                            "its major there, not through postgresVersion/imageName")
        return
    if live.get("imageName") == wanted:
        return
    old_major, new_major = live_major(cluster), image_major(wanted)
    if old_major is not None and new_major is not None and new_major < old_major:
        out.refusals.append(f"PostgreSQL cannot be downgraded from major {old_major} to {new_major}")
        return
    out.patch["imageName"] = wanted
    if old_major is not None and new_major is not None and new_major > old_major:
        out.changes.append(Change("imageName", live.get("imageName"), wanted, MAJOR_UPGRADE,
                                  f"in-place major upgrade {old_major}→{new_major}: CloudNativePG stops ALL "
                                  "instances and runs pg_upgrade (downtime); replicas are cloned again"))
    else:
        out.changes.append(Change("imageName", live.get("imageName"), wanted, RESTART, "rolling update"))
