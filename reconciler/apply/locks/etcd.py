"""The etcd lock backend: a key on a lease, over etcd's v3 JSON gateway (httpx).

``etcd://HOST:PORT[/PREFIX]``: the key ``<prefix>/<cluster>`` (default prefix
``/cms-reconciler/locks``) holds the holder's JSON and is attached to a lease (TTL 15 s by
default). It is created by one transaction that compares ``create_revision == 0``, so exactly
one contender wins; the key's create_revision is the fencing token (:attr:`EtcdLock.token`).
A daemon thread keeps the lease alive every TTL/3. The holder has LOST the lock when a
keepalive says the lease is gone, when no keepalive succeeded for a whole TTL, or when the key
is gone or has another create_revision (:meth:`EtcdLock.verify`). A dead holder's lease simply
expires after its TTL; ``--break-lock`` has nothing to do.

Why the JSON gateway and httpx rather than an etcd client library: python-etcd3 is unmaintained
and pins old grpcio/protobuf; the gateway is part of every etcd v3 server, and httpx is a
well-kept HTTP client. Authentication: ``$RECONCILE_LOCK_TOKEN`` is sent as the
``Authorization`` header; or a user in the URL with ``$RECONCILE_LOCK_PASSWORD`` is exchanged
for a token via ``/v3/auth/authenticate``.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import asdict
from typing import Any

import httpx
import structlog

from reconciler.apply.locks.held import NOTHING_TO_BREAK, LockInfo, RenewedLock
from reconciler.apply.locks.url import PASSWORD_ENV, TOKEN_ENV, LockUrl
from reconciler.common.errors import LockHeldError, LockLostError, ReconcilerError

log = structlog.get_logger(__name__)

REQUEST_TIMEOUT = 3.0


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


class EtcdClient:
    """The few v3 gateway calls the lock needs; every failure -> ReconcilerError."""

    def __init__(self, url: LockUrl) -> None:
        self.url = url
        self.base = f"http://{url.host}:{url.port}"
        self._http = httpx.Client(base_url=self.base, timeout=REQUEST_TIMEOUT)
        token = os.environ.get(TOKEN_ENV)
        if not token and url.username:
            password = os.environ.get(PASSWORD_ENV) or url.password or ""
            answer = self.call(
                "/v3/auth/authenticate", {"name": url.username, "password": password}
            )
            token = str(answer.get("token", ""))
        if token:
            self._http.headers["Authorization"] = token

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(path, content=json.dumps(body))
        except httpx.HTTPError as exc:
            raise ReconcilerError(f"etcd {self.url.shown}: {type(exc).__name__}: {exc}") from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code != 200 or not isinstance(data, dict) or "error" in data:
            detail = data.get("message") or data.get("error") if isinstance(data, dict) else None
            raise ReconcilerError(
                f"etcd {self.url.shown}: {path} answered HTTP {response.status_code}: "
                f"{detail or response.text[:200]}"
            )
        return data

    def close(self) -> None:
        self._http.close()


class EtcdLock(RenewedLock):
    """A held etcd lock (see the module docstring); the renewal is the lease keepalive."""

    JOIN_TIMEOUT = REQUEST_TIMEOUT + 1

    def __init__(
        self, client: EtcdClient, key: str, lease: str, token: int, info: LockInfo, ttl: float
    ) -> None:
        super().__init__(info, ttl, thread_name=f"etcd lease {info.cluster}")
        self.client = client
        self.key = key
        self.lease = lease
        self._token = token
        self._last_ok = time.monotonic()

    @property
    def backend(self) -> str:
        return f"etcd {self.client.url.shown} key {self.key}"

    @property
    def token(self) -> int | None:
        return self._token

    @classmethod
    def acquire(
        cls,
        url: LockUrl,
        cluster: str,
        *,
        ttl: float,
        break_lock: bool = False,
        run_id: str | None = None,
    ) -> EtcdLock:
        client = EtcdClient(url)
        key = f"{url.path}/{cluster}"
        info = LockInfo.for_this_process(cluster, run_id)
        try:
            granted = client.call("/v3/lease/grant", {"TTL": max(1, round(ttl))})
            lease = str(granted["ID"])
            answer = client.call(
                "/v3/kv/txn",
                {
                    "compare": [
                        {
                            "key": _b64(key),
                            "result": "EQUAL",
                            "target": "CREATE",
                            "create_revision": "0",
                        }
                    ],
                    "success": [
                        {
                            "request_put": {
                                "key": _b64(key),
                                "value": _b64(json.dumps(asdict(info))),
                                "lease": lease,
                            }
                        }
                    ],
                    "failure": [{"request_range": {"key": _b64(key)}}],
                },
            )
            if not answer.get("succeeded"):
                with_suppressed_revoke(client, lease)
                raise LockHeldError(_refusal(url, key, cluster, answer, break_lock))
        except BaseException:
            client.close()
            raise
        token = int(answer["header"]["revision"])
        held = cls(client, key, lease, token, info, ttl)
        held._start_renewal()
        log.info("lock acquired", cluster=cluster, lock=held.backend, token=token, lease=lease)
        return held

    # ---------------------------------------------------------------- renewal
    def _renew_once(self) -> bool:
        """One lease keepalive; a failure counts only once none succeeded for a whole TTL."""
        try:
            answer = self.client.call("/v3/lease/keepalive", {"ID": self.lease})
        except ReconcilerError as exc:
            if time.monotonic() - self._last_ok >= self.ttl:
                self._lose(f"no keepalive succeeded for {self.ttl:g}s ({exc})")
                return False
            log.warning("etcd keepalive failed", lock=self.backend, error=str(exc))
            return True
        if int(answer.get("result", {}).get("TTL", 0) or 0) <= 0:
            self._lose(f"its lease {self.lease} expired")
            return False
        self._last_ok = time.monotonic()
        return True

    def _check_held(self) -> None:
        """The key is still ours (same create_revision) and its lease was kept alive."""
        try:
            answer = self.client.call("/v3/kv/range", {"key": _b64(self.key)})
        except ReconcilerError as exc:
            raise LockLostError(f"cannot verify the lock {self.backend}: {exc}") from None
        kvs = answer.get("kvs") or []
        if not kvs:
            self._lose("its key is gone")
        elif int(kvs[0].get("create_revision", 0)) != self._token:
            holder = _holder_of(kvs[0])
            self._lose(
                f"the key was re-created (revision {kvs[0].get('create_revision')}, "
                f"not {self._token}) by {holder}"
            )
        elif time.monotonic() - self._last_ok >= self.ttl:
            self._lose(f"no keepalive succeeded for {self.ttl:g}s")

    def _let_go(self) -> None:
        with_suppressed_revoke(self.client, self.lease)  # deletes the key with its lease
        self.client.close()
        log.info("lock released", lock=self.backend, run_id=self.info.run_id)


def with_suppressed_revoke(client: EtcdClient, lease: str) -> None:
    try:
        client.call("/v3/lease/revoke", {"ID": lease})
    except ReconcilerError as exc:
        log.warning("etcd lease revoke failed (it expires by itself)", error=str(exc))


def _holder_of(kv: dict[str, Any]) -> str:
    try:
        return LockInfo.from_mapping(json.loads(_unb64(str(kv["value"])))).describe()
    except (KeyError, TypeError, ValueError):
        return "an unknown holder"


def _refusal(url: LockUrl, key: str, cluster: str, answer: dict[str, Any], break_lock: bool) -> str:
    try:
        kvs = answer["responses"][0]["response_range"].get("kvs") or []
    except (KeyError, IndexError, TypeError):
        kvs = []
    who = _holder_of(kvs[0]) if kvs else "a holder that just let go (try again)"
    hint = NOTHING_TO_BREAK.format(what="lease expires") if break_lock else ""
    return (
        f"cluster {cluster} is locked by another apply: {who}; "
        f"etcd lock {url.shown} key {key}{hint}"
    )
