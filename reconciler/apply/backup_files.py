"""A backup step's files: `backup snapshot <name>` on the node, then the download.

The MMP writes ``<name>.bak`` and ``<name>.json`` into its SFTP root (TAC 215421). Both
are downloaded into ``<backup dir>/<cluster>/<name>/<node>/`` (folders 0700, files 0600,
read bounded), their sha256 written to ``<cluster>/<name>/SHA256SUMS`` (the format
``sha256sum -c`` checks), and the ``.bak`` checked against the sha256 the ``.json``
states when it states one. A backup set is one ``<name>`` folder; after a backup only the
``keep`` newest sets of the cluster stay (``policy.backups.keep``). Anything that fails
fails the step, so the destructive steps after it do not run.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.common.errors import StepFailedError
from reconciler.common.file_limits import format_size
from reconciler.common.private_files import open_private_append, private_dir
from reconciler.plan.model import Step
from reconciler.transport.interface import CommandOutput, FileCopy

# A CMS backup holds the configuration database; the lab's are a few hundred kB.
BACKUP_LIMIT = 4 * 1024**3
DESCRIPTION_LIMIT = 1024**2
SUMS = "SHA256SUMS"


class BackupSession(Protocol):
    async def run(self, command: str, *, stdin: str | None = None) -> CommandOutput: ...

    async def download_to(self, remote_name: str, local_path: Path, limit: int) -> FileCopy: ...


@dataclass(frozen=True)
class SavedBackup:
    name: str
    node: str
    folder: Path
    files: tuple[tuple[str, FileCopy], ...]  # (file name, what was copied)

    def describe(self) -> str:
        total = sum(c.size for _, c in self.files)
        bak = next((c for n, c in self.files if n.endswith(".bak")), None)
        digest = f"; .bak sha256 {bak.sha256[:12]}…" if bak is not None else ""
        return f"backup {self.name} saved in {self.folder} ({format_size(total)}{digest})"


def set_folder(directory: Path, cluster: str, name: str) -> Path:
    return directory / cluster / name


async def take_backup(
    session: BackupSession, step: Step, directory: Path, cluster: str, keep: int
) -> tuple[CommandOutput, SavedBackup]:
    """Run the step's `backup snapshot`, download both files, record their checksums."""
    name = step.backup
    if name is None or step.command is None:
        raise StepFailedError("backup step without a name", node=step.node, step_id=step.id)
    output = await session.run(step.command)
    if output.failed:
        said = output.text.strip().splitlines()
        raise StepFailedError(
            f"`{step.command}` on {step.node} failed: {said[-1] if said else 'no output'}",
            node=step.node,
            step_id=step.id,
        )
    folder = set_folder(directory, cluster, name)
    node_folder = private_dir(folder / step.node)
    copies: list[tuple[str, FileCopy]] = []
    for remote, limit in ((f"{name}.bak", BACKUP_LIMIT), (f"{name}.json", DESCRIPTION_LIMIT)):
        copies.append((remote, await session.download_to(remote, node_folder / remote, limit)))
    _check_description(step, node_folder / f"{name}.json", copies[0][1])
    _append_sums(folder, step.node, copies)
    prune_sets(directory / cluster, keep=keep, current=name)
    return output, SavedBackup(name, step.node, node_folder, tuple(copies))


def _check_description(step: Step, description: Path, bak: FileCopy) -> None:
    """The ``.json`` must be JSON; a sha256 it states for the ``.bak`` must match."""
    try:
        data = json.loads(description.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StepFailedError(
            f"backup description {description.name} from {step.node} is not JSON: {exc}",
            node=step.node,
            step_id=step.id,
        ) from None
    stated = data.get("sha256") if isinstance(data, dict) else None
    if isinstance(stated, str) and stated.lower() != bak.sha256:
        raise StepFailedError(
            f"backup {description.stem}.bak from {step.node} has sha256 {bak.sha256}, but its "
            f"description says {stated}: the download is not the backup",
            node=step.node,
            step_id=step.id,
        )


def _append_sums(folder: Path, node: str, copies: list[tuple[str, FileCopy]]) -> None:
    lines = "".join(f"{c.sha256}  {node}/{n}\n" for n, c in copies)
    with os.fdopen(open_private_append(folder / SUMS), "a", encoding="utf-8") as fh:
        fh.write(lines)


def prune_sets(cluster_folder: Path, *, keep: int, current: str) -> list[Path]:
    """Remove the oldest backup sets beyond ``keep`` (never ``current``); the removed."""
    sets = sorted(
        (p for p in cluster_folder.iterdir() if p.is_dir() and not p.is_symlink()),
        key=lambda p: (p.stat().st_mtime, p.name),
    )
    others = [p for p in sets if p.name != current]
    extra = len(others) - (keep - 1)
    removed = others[:extra] if extra > 0 else []
    for old in removed:
        shutil.rmtree(old)
    return removed
