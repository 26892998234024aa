"""An in-memory transport over :mod:`reconciler.plan.simulation`, for unit tests of the executor.

It speaks the same text the lab and a real MMP speak: `database cluster status`
is rendered with :func:`reconciler.observe.status_render.render_status`, commands are
parsed back into steps and applied to the simulated world, uploads hash the
local file. Asynchronous commands show ``(In progress)`` for ``async_polls``
status reads before they take effect. Hooks let a test change the world
between commands (drift), fail a command, or make a node unreachable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.common.errors import CommandFailedError, UnreachableError
from reconciler.observe.status_model import CommandResult
from reconciler.observe.status_render import render_status
from reconciler.plan.model import ASYNC_ACTIONS, Action, Step, Upload
from reconciler.plan.simulation import StepRefused, World, apply_step, node_status
from reconciler.transport.interface import STATUS_COMMAND, CommandOutput, FileCopy, NodeTarget

_VERBS = {
    "localnode": Action.LOCALNODE,
    "certs": Action.CERTS,
    "initialize": Action.INITIALIZE,
    "join": Action.JOIN,
    "connect": Action.CONNECT,
    "remove": Action.REMOVE,
    "upgrade_schema": Action.UPGRADE_SCHEMA,
}

Hook = Callable[[World, str, str], World]  # (world, node key, command) -> world


def _action(command: str) -> Action | None:
    words = command.split()
    if words[:2] == ["backup", "snapshot"] and len(words) == 3:
        return Action.BACKUP
    if words[:2] != ["database", "cluster"] or len(words) < 3:
        return None
    if words[2:4] == ["clear", "error"]:
        return Action.CLEAR_ERROR
    return _VERBS.get(words[2])


@dataclass
class _Pending:
    step: Step
    polls_left: int
    fail: bool


@dataclass
class FakeCluster:
    """The simulated world plus the knobs a test turns."""

    world: World
    async_polls: int = 1
    syslog: str = ""
    fail_commands: dict[tuple[str, str], str] = field(default_factory=dict)  # refused outright
    fail_async: set[tuple[str, str]] = field(default_factory=set)  # accepted, then (Failed)
    before_command: Hook | None = None
    commands: list[tuple[str, str]] = field(default_factory=list)  # (node, command), mutating
    connects: dict[str, int] = field(default_factory=dict)
    listings: list[str] = field(default_factory=list)  # node of each full SFTP listing
    # (node, len(commands) at the time) of each `status` read
    status_reads: list[tuple[str, int]] = field(default_factory=list)
    digest_reads: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    # every `status` read, command, upload and checksum read in the order they happened
    timeline: list[tuple[str, str]] = field(default_factory=list)
    contents: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (node, name) -> bytes
    _pending: dict[str, _Pending] = field(default_factory=dict)

    def _tick(self, key: str) -> None:
        pending = self._pending.get(key)
        if pending is None:
            return
        if pending.polls_left > 0:
            pending.polls_left -= 1
            return
        del self._pending[key]
        node = self.world.node(key)
        if pending.fail:
            self.world = self.world.with_node(
                replace(
                    node,
                    running=None,
                    last_command=pending.step.command,
                    last_result=CommandResult.FAILED,
                )
            )
            return
        self.world = apply_step(self.world.with_node(replace(node, running=None)), pending.step)

    def status_text(self, key: str) -> str:
        self._tick(key)
        node = self.world.node(key)
        return render_status(node_status(self.world, node))

    def execute(self, key: str, command: str, stdin: str | None) -> str:
        if self.before_command is not None:
            self.world = self.before_command(self.world, key, command)
        action = _action(command)
        if action is None:
            raise CommandFailedError(
                key, command, f"FAILURE: unknown command '{command}' (type 'help')", 1
            )
        self.commands.append((key, command))
        self.timeline.append((key, command))
        refusal = self.fail_commands.get((key, command))
        if refusal is not None:
            raise CommandFailedError(key, command, f"FAILURE: {refusal}", 1)
        if action is Action.REMOVE and stdin != "Y\n":
            raise CommandFailedError(key, command, "FAILURE: not confirmed", 1)
        node = self.world.node(key)
        if node.running is not None or key in self._pending:
            raise CommandFailedError(
                key, command, "FAILURE: another database cluster command is in progress", 1
            )
        if action is Action.BACKUP:  # the node's files, as cmslab writes them (A8)
            name = command.split()[2]
            dump = f"simulated dump of {key}'s database\n".encode()
            about = {"node": key, "name": name, "sha256": hashlib.sha256(dump).hexdigest()}
            self.contents[(key, f"{name}.bak")] = dump
            self.contents[(key, f"{name}.json")] = json.dumps(about).encode()
            return "SUCCESS\n"
        step = Step(id="fake", node=key, action=action, command=command, reason="fake")
        if action in ASYNC_ACTIONS and self.async_polls > 0:
            self._pending[key] = _Pending(
                step, self.async_polls - 1, (key, command) in self.fail_async
            )
            self.world = self.world.with_node(replace(node, running=command))
            return "SUCCESS\n"
        try:
            self.world = apply_step(self.world, step)
        except StepRefused as exc:
            raise CommandFailedError(key, command, f"FAILURE: {exc}", 1) from None
        return "SUCCESS\n"

    def upload(self, key: str, local_path: str, remote_name: str) -> None:
        data = Path(local_path).read_bytes()
        upload = Upload(
            local_path=local_path,
            remote_name=remote_name,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        self.commands.append((key, f"sftp put {remote_name}"))
        self.timeline.append((key, f"sftp put {remote_name}"))
        step = Step(
            id="fake", node=key, action=Action.UPLOAD, command=None, reason="fake", upload=upload
        )
        self.world = apply_step(self.world, step)

    def files(self, key: str) -> dict[str, str]:
        return dict(sorted(self.world.node(key).file_map().items()))


@dataclass
class FakeSession:
    target: NodeTarget
    cluster: FakeCluster

    def _check_up(self) -> None:
        if not self.cluster.world.node(self.target.name).up:
            raise UnreachableError(self.target.name, "connection lost (simulated)")

    async def run(self, command: str, *, stdin: str | None = None) -> CommandOutput:
        self._check_up()
        key = self.target.name
        if command == STATUS_COMMAND:
            self.cluster.status_reads.append((key, len(self.cluster.commands)))
            self.cluster.timeline.append((key, command))
            text = self.cluster.status_text(key)
        elif command == "syslog":
            text = self.cluster.syslog
        else:
            text = self.cluster.execute(key, command, stdin)
        return CommandOutput(
            node=key, command=command, stdout=text, stderr="", exit_status=0, duration=0.0
        )

    async def upload(self, local_path: str, remote_name: str) -> None:
        self._check_up()
        self.cluster.upload(self.target.name, local_path, remote_name)

    async def list_files(self) -> dict[str, str]:
        self._check_up()
        self.cluster.listings.append(self.target.name)
        return self.cluster.files(self.target.name)

    async def file_digests(self, names: Iterable[str]) -> dict[str, str | None]:
        self._check_up()
        names = tuple(names)
        self.cluster.digest_reads.append((self.target.name, names))
        self.cluster.timeline.append((self.target.name, "sha256 " + " ".join(names)))
        files = self.cluster.files(self.target.name)
        return {n: files.get(n) for n in names}

    async def download(self, remote_name: str) -> bytes:
        self._check_up()
        data = self.cluster.contents.get((self.target.name, remote_name))
        if data is None:
            raise CommandFailedError(
                self.target.name, f"sftp get {remote_name}", "No such file (simulated)", None
            )
        return data

    async def download_to(self, remote_name: str, local_path: Path, limit: int) -> FileCopy:
        data = await self.download(remote_name)
        if len(data) > limit:
            raise CommandFailedError(
                self.target.name, f"sftp get {remote_name}", "too large (simulated)", None
            )
        local_path.write_bytes(data)
        local_path.chmod(0o600)
        return FileCopy(len(data), hashlib.sha256(data).hexdigest())

    async def close(self) -> None:
        return None


@dataclass
class FakeTransport:
    cluster: FakeCluster
    _sessions: dict[str, FakeSession] = field(default_factory=dict)

    async def session(self, target: NodeTarget) -> FakeSession:
        existing = self._sessions.get(target.name)
        if existing is not None:
            return existing
        self.cluster.connects[target.name] = self.cluster.connects.get(target.name, 0) + 1
        try:
            node = self.cluster.world.node(target.name)
        except KeyError:
            raise UnreachableError(target.name, "no such host (simulated)") from None
        if not node.up:
            raise UnreachableError(target.name, "connection refused (simulated)")
        session = FakeSession(target=target, cluster=self.cluster)
        self._sessions[target.name] = session
        return session

    def forget(self, target: NodeTarget) -> None:
        self._sessions.pop(target.name, None)

    async def close(self) -> None:
        self._sessions.clear()
