"""The operator SIGKILLed at random moments while a batch of clusters, roles and databases is applied and
partly deleted: afterwards nothing is lost, duplicated, orphaned or re-issued."""

from __future__ import annotations

import random
import secrets
import threading
import time
from functools import partial
from typing import Any

from devcluster.postgres import PostgresServer
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import database_owner
from tests.integration.test_operator_roles import pg_role, read_password
from tests.reliability.conftest import Row, Scale
from tests.reliability.helpers import (
    CLUSTER,
    DB,
    ROLE,
    PasswordWatch,
    check_produced,
    cnpg_objects,
    events_by_reason,
    is_ready,
    retrying,
    wait_all,
    wait_gone_all,
)

KILL_GAP_S = (0.3, 2.5)  # random pause between the operator becoming ready and the next SIGKILL


def test_operator_killed_repeatedly_mid_batch(
    operator: OperatorProcess, cnpg_simulator: Any, k8s: Any, postgres: PostgresServer, namespace: str,
    intents: Intents, scale: Scale, report: list[Row],
) -> None:
    rng = random.Random(secrets.randbits(32))
    token = secrets.token_hex(2)
    clusters = [f"crash{c}" for c in range(scale.clusters)]
    roles = {f"crash{i:03d}-{token}": (clusters[i % len(clusters)], f"crash{i:03d}_{token}")
             for i in range(scale.roles)}
    role_names = list(roles)
    owners = role_names[:scale.databases]
    doomed = set(rng.sample(role_names[scale.databases:], scale.role_deletions))
    databases = {f"crashdb{i:02d}-{token}": (roles[owner][0], f"crashdb{i:02d}_{token}", roles[owner][1])
                 for i, owner in enumerate(owners)}

    kills: list[float] = []
    stop_killing = threading.Event()

    def killer() -> None:
        for _ in range(scale.kills):
            if stop_killing.wait(rng.uniform(*KILL_GAP_S)):
                break
            operator.kill()
            kills.append(time.monotonic())
            operator.start()

    # (order key, step): a doomed role is deleted a few steps after its own creation, once a third is in
    keyed: list[tuple[float, str, str]] = [(-1.0, "cluster", c) for c in clusters]
    for i, name in enumerate(role_names):
        keyed.append((float(i), "role", name))
        if i < len(owners):
            keyed.append((i + 0.5, "database", list(databases)[i]))
        if name in doomed:
            keyed.append((max(i + 6.5, len(role_names) / 3 + i / 10), "delete", name))
    steps = [(step, name) for _, step, name in sorted(keyed)]
    spread_s = scale.kills * 4.0  # the batch is applied over roughly the time the kills take
    pause = spread_s / len(steps)

    started = time.monotonic()
    with PasswordWatch(k8s, namespace) as watch:
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        try:
            for step, name in steps:
                if step == "cluster":
                    retrying(partial(intents.create, CLUSTER, namespace, name, {"instances": 1}))
                elif step == "role":
                    cluster, role = roles[name]
                    retrying(partial(intents.create, ROLE, namespace, name, {"cluster": cluster, "roleName": role}))
                elif step == "database":
                    cluster, database, owner_role = databases[name]
                    retrying(partial(intents.create, DB, namespace, name,
                                     {"cluster": cluster, "name": database, "owner": owner_role}))
                else:
                    retrying(partial(intents.delete, ROLE, namespace, name), missing_ok=True)
                time.sleep(pause)
            thread.join(timeout=scale.kills * 30)
        finally:
            stop_killing.set()
            thread.join()
        if not operator.running():
            operator.start()
        last_fault = kills[-1] if kills else time.monotonic()
        settled = wait_all(intents, namespace, (CLUSTER, ROLE, DB), is_ready, scale.settle_s)
        wait_gone_all(intents, namespace, ROLE, doomed, scale.settle_s)
    settle_s = time.monotonic() - last_fault
    live = [n for n in role_names if n not in doomed]

    produced = check_produced(k8s, intents, namespace)
    assert produced["roles"] == len(live)
    assert len(cnpg_objects(k8s, namespace, "clusters")) == len(clusters)
    assert not watch.changed(), f"passwords changed since first issue: {watch.changed()}"

    cannot_login = []
    for name in live:
        request = intents.get(ROLE, namespace, name)
        assert request is not None
        password = read_password(k8s, namespace, request["status"]["secretName"])
        assert password == watch.first[request["status"]["secretName"]]
        if not postgres.can_login(roles[name][1], password):
            cannot_login.append(name)
    assert not cannot_login, f"roles whose Secret password does not log in: {cannot_login}"
    still_there = [roles[n][1] for n in doomed if pg_role(postgres, roles[n][1]) is not None]
    assert not still_there, f"deleted requests whose role still exists: {still_there}"
    for _, database, owner_role in databases.values():
        assert database_owner(postgres, database) == owner_role

    events = events_by_reason(intents, namespace)
    applied = [events.get((name, "Applied"), 0) for name in live]
    twice = {name: n for name, n in zip(live, applied, strict=True) if n > 1}
    never = [name for name, n in zip(live, applied, strict=True) if n == 0]
    assert not twice, f"requests whose Ready (Applied) transition was announced more than once: {twice}"
    report.append(Row(
        "operator SIGKILL mid-batch",
        f"{len(clusters)} clusters, {len(roles)} roles ({len(doomed)} deleted), {len(databases)} databases",
        f"{len(kills)} SIGKILLs over {kills[-1] - started if kills else 0:.0f}s",
        "all Ready once; passwords unchanged; no orphan/duplicate; deleted roles dropped",
        f"all {len(live)} roles + {len(databases)} dbs + {len(clusters)} clusters Ready {settled:.0f}s after the "
        f"batch ({settle_s:.0f}s after last kill); 0 password changes, 0 orphans, 0 duplicates; "
        f"{len(live)} logins OK; {len(doomed)} dropped; Applied events per role: "
        f"min {min(applied)}, max {max(applied)} ({len(never)} never announced)",
    ))
    assert not never, f"requests Ready whose Applied transition was never announced: {never}"
