"""The gateway's only door to the Kubernetes API: one long-lived client per process.

Calls run in worker threads (the kubernetes client is synchronous). Reads cover CNPG objects, intents,
Events, and instance Pods with their logs; writes are restricted to the three intent kinds by
construction: `write_intent`, `patch_intent` and `delete_intent` are the only writing methods.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.incluster_config import SERVICE_TOKEN_FILENAME

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import KINDS
from mcp_gateway import errors, identity
from mcp_gateway.watch_cache import Mirror, NamespaceNotFound, Shape, WatchCache

log = logging.getLogger(__name__)

T = TypeVar("T")
INTENT_PLURALS = tuple(kind.plural for kind in KINDS)
_GROUP_SEPARATOR = "\n"  # never valid inside a header value, so safe to split on
# Impersonate-Extra-<key>: the API server lower-cases the key and percent-decodes it (url.PathUnescape),
# so the `/` of a domain-prefixed key travels as %2F.
VIA_HEADER = "Impersonate-Extra-" + quote(constants.VIA_USER_EXTRA, safe="")
# (connect, read) seconds for one request. Short: while etcd is away kube-apiserver accepts requests and never
# answers them, and a tool must then say [UNAVAILABLE] within seconds, not hang (tests/reliability
# test_gateway_etcd_outage.py). A healthy API server answers these requests in milliseconds.
REQUEST_TIMEOUT = (3.0, 4.0)
# A request that could not be answered makes the next requests fail at once for this long, without waiting
# out their own timeout: one tool call reads several things, and every one would wait again. Meanwhile one
# short probe of the API server's /readyz (its etcd check included) at most every PROBE_INTERVAL lets requests
# through again the moment it is back, instead of failing them for the rest of the hold.
UNREACHABLE_HOLD = 3.0
PROBE_INTERVAL = 0.5
# A mirror that answers its first read with an error at once holds an old one (see Kube._mirror).
STALE_MIRROR_ERROR = 0.5
PROBE_TIMEOUT = (0.5, 0.5)  # a healthy API server answers /readyz in milliseconds
# No read retries in urllib3 (its default retries a timed-out GET three times: a 4 s timeout became 16 s);
# a connection refused is still retried once, which costs nothing.
NO_READ_RETRIES = urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, other=0)
READY_TTL = 10.0  # /readyz answers from what the gateway last saw for this long: no API call per probe
DEFAULT_KUBECONFIG = "~/.kube/config"


class NoCredentials(RuntimeError):
    """Neither a usable kubeconfig nor in-cluster credentials: the message says what was looked for."""


def _from_kubeconfig(source: str) -> Any:
    try:
        return config.new_client_from_config(config_file=source)
    except Exception as exc:  # malformed file, no current context, missing certificate: one clear line
        reason = " ".join(str(exc).split())
        raise NoCredentials(f"kubeconfig {source} is not usable: {reason}") from exc


def api_client_from_environment(kubeconfig: str | None) -> Any:
    """--kubeconfig or $KUBECONFIG (files separated by the path separator), in-cluster, then ~/.kube/config."""
    source = kubeconfig or os.environ.get("KUBECONFIG") or ""
    files = [f for f in source.split(os.pathsep) if f]
    if any(Path(f).expanduser().is_file() for f in files):
        return _from_kubeconfig(source)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as exc:
            raise NoCredentials(f"in-cluster credentials are not usable: {exc}") from exc
        return client.ApiClient(configuration)
    default = Path(DEFAULT_KUBECONFIG).expanduser()
    if not files and default.is_file():
        return _from_kubeconfig(str(default))
    looked = (f"kubeconfig {', '.join(files)} ({'--kubeconfig' if kubeconfig else 'KUBECONFIG'}): not found"
              if files else f"KUBECONFIG: not set; {default}: not found")
    raise NoCredentials(
        f"no Kubernetes credentials: {looked}; in-cluster service account: KUBERNETES_SERVICE_HOST not set "
        f"(token {SERVICE_TOKEN_FILENAME} {'present' if Path(SERVICE_TOKEN_FILENAME).exists() else 'absent'}). "
        "Give --kubeconfig or set KUBECONFIG to a kubeconfig file.")


class Readiness:
    """The last thing learnt about the API server (a call that answered, or a connection failure). Pure logic."""

    def __init__(self, ttl: float = READY_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self._clock = ttl, clock
        self._seen: tuple[float, bool] | None = None
        self._probed_at: float | None = None

    def record(self, reachable: bool) -> None:
        self._seen = (self._clock(), reachable)

    def record_probe(self, ready: bool) -> None:
        self._probed_at = self._clock()
        self.record(ready)

    def probe_due(self, hold: float, interval: float) -> bool:
        """Requests are being held back (a failure within `hold`) and nobody asked /readyz in `interval`."""
        return self.unreachable_within(hold) and (
            self._probed_at is None or self._clock() - self._probed_at >= interval)

    def unreachable_within(self, seconds: float) -> bool:
        """The last observation was a failure to answer, at most `seconds` ago."""
        return self._seen is not None and not self._seen[1] and self._clock() - self._seen[0] < seconds

    def fresh(self) -> bool | None:
        """The recent observation, or None when there is none within the TTL (a check is due)."""
        if self._seen is None or self._clock() - self._seen[0] >= self.ttl:
            return None
        return self._seen[1]


def _multi_value_headers(request: Callable[..., Any]) -> Callable[..., Any]:
    """The generated client keeps one value per header; impersonation needs one Impersonate-Group per group.
    Also sets the retry policy (the generated client gives none, so urllib3's default applied)."""
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("retries", NO_READ_RETRIES)
        headers = kwargs.get("headers")
        if headers and _GROUP_SEPARATOR in str(headers.get("Impersonate-Group", "")):
            multi = urllib3.HTTPHeaderDict()
            for key, value in headers.items():
                for part in (str(value).split(_GROUP_SEPARATOR) if key == "Impersonate-Group" else [value]):
                    multi.add(key, part)
            kwargs["headers"] = multi
        return request(*args, **kwargs)
    return wrapped


def _timed_lists(lister: Callable[..., Any]) -> Callable[..., Any]:
    """The watch cache's lister with REQUEST_TIMEOUT on its lists (a mirror's first list is what a tool waits
    for); its watches keep their own, long, timeouts."""
    def timed(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("watch"):
            kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        return lister(*args, **kwargs)
    return functools.update_wrapper(timed, lister)  # Watch reads the lister's docstring


# ------------------------------------------------------------------ Events in the watch cache
EVENTS = ("", "v1", "events")  # group, version, plural of core/v1 Events in a mirror key
EVENTS_PER_NAMESPACE = 1000  # a mirror keeps the newest this many (an Event lives an hour: --event-ttl)
_EVENT_FIELDS = ("type", "reason", "message", "lastTimestamp", "eventTime", "count")


def _event_time(event: dict[str, Any]) -> str:
    """What orders Events newest first (the same key with or without the cache)."""
    return str(event.get("lastTimestamp") or event.get("eventTime") or "")


def _slim_event(event: dict[str, Any]) -> dict[str, Any]:
    """What get_cluster_status reads of an Event (and the mirror needs), nothing more: an Event is mostly
    managed fields and source details."""
    meta, involved = event.get("metadata") or {}, event.get("involvedObject") or {}
    return {"metadata": {k: meta[k] for k in ("name", "namespace", "resourceVersion") if k in meta},
            "involvedObject": {k: involved[k] for k in ("kind", "name") if k in involved},
            **{k: event[k] for k in _EVENT_FIELDS if k in event}}


def _event_shape(core: Any) -> Shape:
    def list_events(group: str, version: str, namespace: str, plural: str, **kwargs: Any) -> Any:
        """core/v1 Events of a namespace as plain JSON, in the custom-objects lister's calling convention.

        :rtype: object
        """
        if kwargs.get("watch"):  # the watch passes _preload_content=False and reads the stream itself
            return core.list_namespaced_event(namespace, **kwargs)
        return json.loads(core.list_namespaced_event(namespace, _preload_content=False, **kwargs).data)

    return Shape(lister=_timed_lists(list_events), project=_slim_event, capacity=EVENTS_PER_NAMESPACE, age=_event_time)


def _about(name: str) -> Callable[[dict[str, Any]], bool]:
    """The Events whose involvedObject is called `name` (the field selector the API call uses)."""
    return lambda event: (event.get("involvedObject") or {}).get("name") == name


class Kube:
    def __init__(self, api_client: Any, *, watch_cache: bool = False, max_mirrors: int = 64,
                 idle_seconds: float = 600.0) -> None:
        self.api_client = api_client
        pool = api_client.rest_client.pool_manager
        pool.request = _multi_value_headers(pool.request)
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.readiness = Readiness()
        self._readiness_check = anyio.Lock()
        self._probe_lock = anyio.Lock()
        self._own_user: str | None = None  # learned at the first impersonated call
        self._own_user_asked = False
        self._own_user_lock = anyio.Lock()
        self.cache = WatchCache(_timed_lists(self.custom.list_namespaced_custom_object),
                                namespace_exists=self._namespace_exists, max_mirrors=max_mirrors,
                                idle_seconds=idle_seconds,
                                shapes={(EVENTS[0], EVENTS[2]): _event_shape(self.core)}) if watch_cache else None
        self._events_watched = True  # until the API server refuses the gateway a watch on Events

    @classmethod
    def connect(cls, kubeconfig: str | None = None, *, watch_cache: bool = False, max_mirrors: int = 64,
                idle_seconds: float = 600.0) -> Kube:
        """NoCredentials when neither a kubeconfig nor in-cluster credentials are usable."""
        return cls(api_client_from_environment(kubeconfig), watch_cache=watch_cache, max_mirrors=max_mirrors,
                   idle_seconds=idle_seconds)

    def _namespace_exists(self, namespace: str) -> bool:
        """Checked before a mirror starts there. Without the right to read namespaces we cannot tell: yes."""
        try:
            self.core.read_namespace(namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return False
            if exc.status in (401, 403):
                log.warning("cannot read namespace %s (%s): mirrors start without checking it", namespace, exc.status)
                return True
            raise
        return True

    def close(self) -> None:
        if self.cache is not None:
            self.cache.stop()
        self.api_client.close()

    async def _mirror(self, group: str, version: str, plural: str, namespace: str) -> Mirror | None:
        """The read mirror to use, or None: no cache, or an impersonated call (the user's RBAC must decide)."""
        if self.cache is None or identity.impersonated() is not None:
            return None
        cache, key = self.cache, (group, version, plural, namespace)
        ready = cache.ready(key)  # a filled mirror answers without a worker thread
        if ready is not None:
            return ready
        asked = time.monotonic()
        try:
            return await anyio.to_thread.run_sync(lambda: cache.mirror(key))
        except NamespaceNotFound as exc:
            raise errors.tool_error(errors.NAMESPACE_NOT_FOUND, f"namespace {namespace!r} does not exist. Check "
                                    "the name (kubectl get namespaces lists them).") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # A mirror that never listed holds its last connection error until its next list succeeds (seconds
            # after the API server is back): ask the API directly, which fails fast while it is still away.
            # The failure counts as an unanswered request, so that read fails fast unless /readyz says it is back.
            self.readiness.record(False)
            if time.monotonic() - asked >= STALE_MIRROR_ERROR:
                raise  # the mirror's list failed just now, while we waited for it: the API is away
            log.info("mirror %s not filled (%s): reading from the API", "/".join(key), type(exc).__name__)
            return None

    def _remember(self, plural: str, namespace: str, obj: dict[str, Any]) -> None:
        """Read-your-writes: fold our own write into the mirror at once."""
        if self.cache is not None:
            mirror = self.cache.known((constants.GROUP, constants.VERSION, plural, namespace))
            if mirror is not None:
                mirror.apply(obj)

    def _ask_own_user(self) -> str | None:
        """Our own username as the API server authenticates us (SelfSubjectReview, not impersonated)."""
        try:
            review = client.AuthenticationV1Api(self.api_client).create_self_subject_review(
                {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                _request_timeout=REQUEST_TIMEOUT)
            username: str | None = review.status.user_info.username
        except (ApiException, urllib3.exceptions.HTTPError, OSError, AttributeError) as exc:
            log.warning("cannot learn the gateway's own username (SelfSubjectReview: %s): impersonated requests "
                        "will not carry %s, so intents get no %s", exc, constants.VIA_USER_EXTRA,
                        constants.REQUESTED_VIA_ANNOTATION)
            return None
        return username or None

    async def _own_username(self) -> str | None:
        """Asked once (the answer, or the failure, is kept): it cannot change while the process runs."""
        async with self._own_user_lock:
            if not self._own_user_asked:
                self._own_user = await anyio.to_thread.run_sync(self._ask_own_user)
                self._own_user_asked = True
        return self._own_user

    async def _headers(self) -> dict[str, str] | None:
        who = identity.impersonated()
        if who is None:
            return None
        headers = {"Impersonate-User": who.user}
        if who.groups:
            headers["Impersonate-Group"] = _GROUP_SEPARATOR.join(who.groups)
        # Which gateway acted: admission sees only the impersonated user, so the gateway names itself in a
        # user extra its RBAC allows for its own name only (deploy/components/impersonation).
        own = await self._own_username()
        if own is not None:
            headers[VIA_HEADER] = own
        return headers

    @staticmethod
    def _json(fn: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
        """`fn` answering with the decoded JSON body instead of the client's models (read in the worker thread)."""
        def call(*args: Any, **kwargs: Any) -> dict[str, Any]:
            response = fn(*args, _preload_content=False, **kwargs)
            decoded: dict[str, Any] = json.loads(response.data)
            return decoded
        return call

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        headers = await self._headers()
        if headers:
            kwargs["_headers"] = headers
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        await self._admit()
        try:
            result = await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
        except ApiException:
            self.readiness.record(True)  # it answered
            raise
        except (urllib3.exceptions.HTTPError, OSError):
            self.readiness.record(False)
            raise
        self.readiness.record(True)
        return result

    async def _admit(self) -> None:
        """Fail fast while the API server recently did not answer, unless a shared /readyz probe says it is back."""
        if not self.readiness.unreachable_within(UNREACHABLE_HOLD):
            return
        async with self._probe_lock:  # one probe at a time; the others wait for its answer
            if self.readiness.probe_due(UNREACHABLE_HOLD, PROBE_INTERVAL):
                self.readiness.record_probe(await anyio.to_thread.run_sync(self._api_ready))
        if self.readiness.unreachable_within(UNREACHABLE_HOLD):
            raise urllib3.exceptions.TimeoutError(
                f"the Kubernetes API did not answer a request in the last {UNREACHABLE_HOLD:.0f} s")

    def _api_ready(self) -> bool:
        """The API server's own /readyz (open to every authenticated user): 200 only when etcd answers it."""
        try:
            method, url, headers, body, post = self.api_client.param_serialize(
                "GET", "/readyz", auth_settings=["BearerToken"])
            response = self.api_client.call_api(method, url, headers, body, post, _request_timeout=PROBE_TIMEOUT)
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return False
        return bool(response.status == 200)

    # ------------------------------------------------------------------ reads
    async def get(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(self.custom.get_namespaced_custom_object, group, version,
                                                  namespace, plural, name)
        return result

    async def get_or_none(self, group: str, version: str, plural: str, namespace: str,
                          name: str) -> dict[str, Any] | None:
        mirror = await self._mirror(group, version, plural, namespace)
        if mirror is not None:
            return mirror.get(name)
        try:
            return await self.get(group, version, plural, namespace, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list_objects(self, group: str, version: str, plural: str, namespace: str,
                   label_selector: str | None = None) -> list[dict[str, Any]]:
        if not label_selector:
            mirror = await self._mirror(group, version, plural, namespace)
            if mirror is not None:
                return mirror.list()
        kwargs: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        result = await self._call(self.custom.list_namespaced_custom_object, group, version, namespace, plural,
                                  **kwargs)
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def cnpg_get_or_none(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.get_or_none(constants.CNPG_GROUP, constants.CNPG_VERSION, plural, namespace, name)

    async def cnpg_list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        return await self.list_objects(constants.CNPG_GROUP, constants.CNPG_VERSION, plural, namespace)

    async def intent_get_or_none(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.get_or_none(constants.GROUP, constants.VERSION, plural, namespace, name)

    async def intent_list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        return await self.list_objects(constants.GROUP, constants.VERSION, plural, namespace)

    async def events_for(self, namespace: str, name: str, limit: int = 10) -> list[dict[str, Any]]:
        """The newest Events about objects called `name` (the Cluster and its PgClusterRequest share it)."""
        mirror = await self._mirror(*EVENTS, namespace) if self._events_watched else None
        if mirror is not None and mirror.refused:  # listed once, then the watch was refused: ask the API each time
            self._events_watched = False
            log.warning("the API server refuses the gateway a watch on Events (%s): get_cluster_status lists them "
                        "from the API; grant watch on events to the gateway's role", namespace)
        elif mirror is not None:
            events = mirror.list(_about(name))
        if mirror is None or not self._events_watched:
            # Raw JSON: the client's V1Event models (built, then turned back into dicts) cost more than the call.
            listing = await self._call(self._json(self.core.list_namespaced_event), namespace,
                                       field_selector=f"involvedObject.name={name}")
            events = listing.get("items", [])
        events.sort(key=_event_time, reverse=True)
        return events[:limit]

    async def namespace_names(self) -> list[str]:
        """The names of the namespaces (completions only; a 403 is the caller's to handle)."""
        listing = await self._call(self.core.list_namespace)
        return sorted(str(n.metadata.name) for n in listing.items)

    async def pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """Pods matching a label selector, as plain dicts (never mirrored: only get_cluster_logs lists them)."""
        listing = await self._call(self.core.list_namespaced_pod, namespace, label_selector=label_selector)
        pods: list[dict[str, Any]] = self.api_client.sanitize_for_serialization(listing).get("items", [])
        return pods

    async def pod_log(self, namespace: str, pod: str, *, container: str, tail_lines: int,
                      since_seconds: int | None = None, limit_bytes: int | None = None) -> str:
        """The newest lines of one container's log (`pods/log`), as the kubelet returns them."""
        kwargs: dict[str, Any] = {"container": container, "tail_lines": tail_lines}
        if since_seconds is not None:
            kwargs["since_seconds"] = since_seconds
        if limit_bytes is not None:
            kwargs["limit_bytes"] = limit_bytes

        def read(*args: Any, **options: Any) -> bytes:
            # Raw bytes: the client would json.loads a one-line log (CNPG's lines are JSON) and return its repr.
            response = self.core.read_namespaced_pod_log(*args, _preload_content=False, **options)
            try:
                return bytes(response.data)
            finally:
                response.release_conn()

        body = await self._call(read, pod, namespace, **kwargs)
        return body.decode("utf-8", errors="replace")

    async def reachable(self) -> bool:
        """Asks the API server now (one call)."""
        try:
            await anyio.to_thread.run_sync(lambda: client.VersionApi(self.api_client).get_code(_request_timeout=5))
        except Exception:  # any failure means "not ready"
            return False
        return True

    async def ready(self) -> bool:
        """For /readyz: what the gateway saw in the last READY_TTL seconds, else one check shared by all askers."""
        seen = self.readiness.fresh()
        if seen is not None:
            return seen
        async with self._readiness_check:
            seen = self.readiness.fresh()  # another asker may just have checked
            if seen is None:
                seen = await self.reachable()
                self.readiness.record(seen)
            return seen

    # ------------------------------------------------------------------ writes: intents only
    async def write_intent(self, plural: str, namespace: str, body: dict[str, Any], *,
                           dry_run: bool = False) -> dict[str, Any]:
        assert plural in INTENT_PLURALS
        kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        result: dict[str, Any] = await self._call(self.custom.create_namespaced_custom_object, constants.GROUP,
                                                  constants.VERSION, namespace, plural, body, **kwargs)
        if not dry_run:
            self._remember(plural, namespace, result)
        return result

    async def patch_intent(self, plural: str, namespace: str, name: str, patch: dict[str, Any], *,
                           dry_run: bool = False) -> dict[str, Any]:
        assert plural in INTENT_PLURALS
        kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        result: dict[str, Any] = await self._call(self.custom.patch_namespaced_custom_object, constants.GROUP,
                                                  constants.VERSION, namespace, plural, name, patch, **kwargs)
        if not dry_run:
            self._remember(plural, namespace, result)
        return result

    async def delete_intent(self, plural: str, namespace: str, name: str, *, dry_run: bool = False,
                            missing_ok: bool = False) -> None:
        """`missing_ok`: the caller deletes what a listing named, and the object may have finished its own
        deletion since (a listing, cached or not, is a moment old)."""
        assert plural in INTENT_PLURALS
        kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        try:
            await self._call(self.custom.delete_namespaced_custom_object, constants.GROUP, constants.VERSION,
                             namespace, plural, name, **kwargs)
        except ApiException as exc:
            if not (missing_ok and exc.status == 404):
                raise
