"""The thin Kubernetes API layer of the operator: one long-lived async client, dicts in and out.

Every call goes through `Api.request`, so the operator's own writes are counted in one place
(`Api.writes`, reported by the liveness probe and in the log) and every error is an `ApiError`
whose message carries the API server's reason but never a request body (bodies may hold secrets).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from kubernetes.aio import client as aio_client
from kubernetes.aio import config as aio_config

from cnpg_mcp_api import constants
from cnpg_mcp_operator import metrics

log = logging.getLogger(__name__)

Json = dict[str, Any]
T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
FIELD_MANAGER = "cnpg-mcp-operator"
CONFLICT_ATTEMPTS = 20


@dataclass(frozen=True)
class Resource:
    """A namespaced kind as the REST API addresses it (group "" is the core group)."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{base}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        if name is not None:
            path += f"/{quote(name, safe='')}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


SECRETS = Resource("", "v1", "secrets", "Secret")
CLUSTERS = Resource(constants.CNPG_GROUP, constants.CNPG_VERSION, constants.CNPG_CLUSTERS, "Cluster")
DATABASES = Resource(constants.CNPG_GROUP, constants.CNPG_VERSION, constants.CNPG_DATABASES, "Database")
DATABASE_ROLES = Resource(constants.CNPG_GROUP, constants.CNPG_VERSION, constants.CNPG_DATABASE_ROLES, "DatabaseRole")
BACKUPS = Resource(constants.CNPG_GROUP, constants.CNPG_VERSION, constants.CNPG_BACKUPS, "Backup")
SCHEDULED_BACKUPS = Resource(constants.CNPG_GROUP, constants.CNPG_VERSION, constants.CNPG_SCHEDULED_BACKUPS,
                             "ScheduledBackup")
POOLERS = Resource(constants.CNPG_GROUP, constants.CNPG_VERSION, constants.CNPG_POOLERS, "Pooler")
PODS = Resource("", "v1", "pods", "Pod")
OBJECT_STORES = Resource(constants.BARMAN_GROUP, constants.BARMAN_VERSION, constants.BARMAN_OBJECT_STORES,
                         "ObjectStore")


class ApiError(Exception):
    """An API call failed. `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def namespace_terminating(self) -> bool:
        """The namespace is being deleted: nothing can be created there any more."""
        return self.status == 403 and "being terminated" in self.message


def _error_from(exc: aio_client.ApiException) -> ApiError:
    """Only the Status message of the server (never the request) goes into the error text."""
    status = int(exc.status or 0)
    message = str(exc.reason or "")
    try:
        payload = json.loads(exc.body or "")
        message = str(payload.get("message") or message)
        reason = str(payload.get("reason") or exc.reason or "")
    except (TypeError, ValueError):
        reason = str(exc.reason or "")
    return ApiError(status, reason, message)


def _counted(method: str, error: ApiError) -> ApiError:
    if error.conflict:
        metrics.API_CONFLICTS.labels(method=method).inc()
    return error


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _without_env_lookups(api_client: aio_client.ApiClient) -> aio_client.ApiClient:
    """The client's aiohttp session trusts the environment: before every request it reads ~/.netrc and
    the proxy variables, each in a worker thread (a sixth of the operator's CPU in a 1,000-role burst,
    py-spy; issue #14). Without proxy variables there is nothing to find there (the credentials come
    from the kubeconfig or the pod's token), so the session is told not to look."""
    if not any(os.environ.get(variable) for variable in PROXY_VARIABLES):
        api_client.configuration.client_session_kwargs = {
            **(api_client.configuration.client_session_kwargs or {}), "trust_env": False}
    return api_client


class Api:
    """Get/create/patch/delete for namespaced objects; counts writes by (verb, kind)."""

    def __init__(self, api_client: aio_client.ApiClient) -> None:
        self._client = api_client
        self.writes: Counter[str] = Counter()

    @classmethod
    async def connect(cls, kubeconfig: str | None) -> Api:
        """In-cluster credentials when there is no kubeconfig and we run in a pod, else the kubeconfig."""
        if kubeconfig is None:
            try:
                aio_config.load_incluster_config()
                return cls(_without_env_lookups(aio_client.ApiClient()))
            except aio_config.ConfigException:
                pass
        api_client = await aio_config.new_client_from_config(config_file=kubeconfig)
        return cls(_without_env_lookups(api_client))

    async def close(self) -> None:
        await self._client.close()

    @property
    def total_writes(self) -> int:
        return sum(self.writes.values())

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Json:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        if query:
            path = f"{path}?{urlencode(dict(query))}"
        method_, url, header_params, body_, post = await self._client.param_serialize(
            method=method, resource_path=path, header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = await self._client.call_api(method_, url, header_params, body_, post,
                                                   _request_timeout=30)
            raw = await response.read()
        except aio_client.ApiException as exc:
            raise _counted(method, _error_from(exc)) from None
        except (TimeoutError, OSError) as exc:
            raise ApiError(0, "Unreachable", f"the API server could not be reached: {exc}") from None
        if not 200 <= response.status <= 299:
            text = raw.decode("utf-8", errors="replace") if raw else ""
            raise _counted(method, _error_from(aio_client.ApiException(status=response.status,
                                                                       reason=response.reason, body=text)))
        if not raw:
            return {}
        data = json.loads(raw)
        return data if isinstance(data, dict) else {}

    def _count(self, verb: str, resource: Resource, subresource: str | None = None) -> None:
        self.writes[f"{verb} {resource.kind}{'/' + subresource if subresource else ''}"] += 1

    # ---------------------------------------------------------------------------------- reads
    async def get(self, resource: Resource, namespace: str, name: str) -> Json | None:
        try:
            return await self.request("GET", resource.path(namespace, name))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    async def list(self, resource: Resource, namespace: str, *, label_selector: str | None = None) -> list[Json]:
        query = {"labelSelector": label_selector} if label_selector else None
        listing = await self.request("GET", resource.path(namespace), query=query)
        return [dict(item) for item in listing.get("items") or []]

    async def group_resources(self, group: str, version: str) -> set[str] | None:
        """Plural names the API server serves for group/version; None when it serves none."""
        try:
            listing = await self.request("GET", f"/apis/{group}/{version}")
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        return {str(r.get("name")) for r in listing.get("resources") or [] if "/" not in str(r.get("name"))}

    # --------------------------------------------------------------------------------- writes
    async def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Json | None:
        """Creates the object; None when an object of that name already exists (409)."""
        self._count("create", resource)
        try:
            return await self.request("POST", resource.path(namespace), body=dict(body),
                                      query={"fieldManager": FIELD_MANAGER})
        except ApiError as exc:
            if exc.conflict:
                return None
            raise

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Any,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> Json:
        self._count("patch", resource, subresource)
        return await self.request("PATCH", resource.path(namespace, name, subresource), body=patch,
                                  content_type=content_type, query={"fieldManager": FIELD_MANAGER})

    async def patch_status(self, resource: Resource, namespace: str, name: str,
                           status: Mapping[str, Any]) -> Json:
        return await self.patch(resource, namespace, name, {"status": dict(status)}, subresource="status")

    async def delete(self, resource: Resource, namespace: str, name: str, *,
                     propagation: str = "Background", uid: str | None = None) -> bool:
        """Deletes the object (only this incarnation of it when `uid` is given); False when it was already gone."""
        self._count("delete", resource)
        options: Json = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", resource.path(namespace, name), body=options)
        except ApiError as exc:
            if exc.not_found:
                return False
            raise
        return True


async def retry_on_conflict(attempt: Callable[[], Awaitable[T]], *, attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Runs a read-modify-write `attempt` again while the server answers 409 (stale resourceVersion).

    The attempt must re-read what it modifies on every call. A short, growing, jittered pause keeps
    concurrent writers of the same object from colliding again and again.
    """
    for number in range(1, attempts + 1):
        try:
            return await attempt()
        except ApiError as exc:
            if not exc.conflict or number == attempts:
                raise
            metrics.CONFLICT_RETRIES.inc()
            await asyncio.sleep(min(0.05 * number, 0.5))
    raise AssertionError("unreachable")
