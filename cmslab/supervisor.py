"""The lab process: hosts every node in one asyncio loop; controlled through DIR/control.sock.

Run as `python -m cmslab.supervisor DIR` (what `cmslab up` starts, detached, in its own session).
Control protocol: one JSON object per line in, one JSON object per line out:
`{"op": "ping"}`, `{"op": "status"}`, `{"op": "fault", "node": N, "fault": F, "arg": A}`,
`{"op": "down"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from cmslab import cleanup, labfiles, node_runtime
from cmslab.config import LabPaths, read_config
from cmslab.node import Lab, LabNode

FAULTS = ("kill", "revive", "block-db", "unblock-db", "schema-error", "latency")


class Supervisor:
    def __init__(self, root: Path) -> None:
        self.paths = LabPaths(root)
        cfg = read_config(self.paths)
        self.lab = Lab(self.paths, cfg, labfiles.read_password(self.paths))
        for n in cfg.nodes:
            self.lab.nodes[n.name] = LabNode(self.lab, n)
        self.ready = False
        self.error: str | None = None
        self.stopping = asyncio.Event()
        self.fault_lock = asyncio.Lock()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self.stopping.set)
        self.paths.control_sock.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(self._control, str(self.paths.control_sock))
        os.chmod(self.paths.control_sock, 0o600)
        try:
            results = await asyncio.gather(
                *(node_runtime.power_on(n) for n in self.lab.nodes.values()), return_exceptions=True
            )
            errors = [
                f"{n.name}: {r}"
                for n, r in zip(self.lab.nodes.values(), results, strict=True)
                if isinstance(r, BaseException)
            ]
            if errors:
                self.error = "; ".join(errors)
                print("startup failed:", self.error, flush=True)
            else:
                self.ready = True
                print("lab ready", flush=True)
                await self.stopping.wait()
        finally:
            await self.shutdown()
            server.close()
            self.paths.control_sock.unlink(missing_ok=True)
        return 1 if self.error else 0

    async def shutdown(self) -> None:
        nodes = list(self.lab.nodes.values())
        masters = [n for n in nodes if n.watch_info.get("role") == "master"]
        others = [n for n in nodes if n not in masters]
        for group in (others, masters):
            results = await asyncio.gather(
                *(node_runtime.shutdown(n) for n in group), return_exceptions=True
            )
            for n, r in zip(group, results, strict=True):
                if isinstance(r, BaseException):
                    print(f"{n.name}: shutdown error: {r}", flush=True)

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    reply = await self.handle(req)
                except Exception as exc:
                    reply = {"ok": False, "message": f"{type(exc).__name__}: {exc}"}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
                if req.get("op") == "down":
                    self.stopping.set()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "ping":
            return {"ok": True, "ready": self.ready, "error": self.error, "pid": os.getpid()}
        if op == "status":
            return {
                "ok": True,
                "ready": self.ready,
                "nodes": [await self.node_row(n) for n in self.lab.nodes.values()],
            }
        if op == "down":
            return {"ok": True, "message": "stopping"}
        if op == "fault":
            async with self.fault_lock:
                return await self.fault(str(req.get("node")), str(req.get("fault")), req.get("arg"))
        return {"ok": False, "message": f"unknown op {op!r}"}

    async def node_row(self, n: LabNode) -> dict[str, Any]:
        return {
            "name": n.name,
            "address": n.address,
            "ssh_port": n.cfg.ssh_port,
            "db_port": n.cfg.db_port,
            "power": "on" if n.alive else "killed",
            "db_port_state": "blocked" if n.db_blocked else "open",
            "clustered": n.state.role or "-",
            "role": n.watch_info.get("role") or "-",
            "latency_ms": n.state.latency_ms,
            "schema_error_armed": n.state.schema_error_armed,
            "last_command": n.state.last_command,
            "last_result": n.state.last_result,
        }

    async def fault(self, name: str, fault: str, arg: Any) -> dict[str, Any]:
        node = None
        for n in self.lab.nodes.values():
            if name in (n.name, n.address):
                node = n
        if node is None:
            return {"ok": False, "message": f"no node {name!r}"}
        if fault not in FAULTS:
            return {"ok": False, "message": f"unknown fault {fault!r} (one of {', '.join(FAULTS)})"}
        if fault == "kill":
            if not node.alive:
                return {"ok": False, "message": f"{node.name} is already killed"}
            await node_runtime.kill(node)
        elif fault == "revive":
            if node.alive:
                return {"ok": False, "message": f"{node.name} is running"}
            await node_runtime.power_on(node)
        elif fault == "block-db":
            await node_runtime.set_db_blocked(node, True)
        elif fault == "unblock-db":
            await node_runtime.set_db_blocked(node, False)
        elif fault == "schema-error":
            node.state.schema_error_armed = True
            node.save()
        elif fault == "latency":
            try:
                ms = int(arg)
            except (TypeError, ValueError):
                return {"ok": False, "message": "latency needs milliseconds, e.g. `latency 50`"}
            if ms < 0:
                return {"ok": False, "message": "latency must be >= 0"}
            node.state.latency_ms = ms
            node.save()
        return {
            "ok": True,
            "message": f"{node.name}: {fault}" + (f" {arg}" if arg is not None else ""),
        }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]).resolve()
    paths = LabPaths(root)
    paths.supervisor_pid.write_text(f"{os.getpid()}\n")
    try:
        cleanup.stop_leftover_postgres(paths)
        return asyncio.run(Supervisor(root).run())
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        with contextlib.suppress(OSError):
            if paths.supervisor_pid.read_text().strip() == str(os.getpid()):
                paths.supervisor_pid.unlink()


if __name__ == "__main__":
    sys.exit(main())
