"""A backup step's downloads: checksums, the description's own sha256, refusals, pruning."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from reconciler.apply.backup_files import SUMS, prune_sets, take_backup
from reconciler.common.errors import StepFailedError
from reconciler.plan.model import Action, Step
from reconciler.transport.interface import CommandOutput, FileCopy

STEP = Step(
    id="s01",
    node="n1",
    action=Action.BACKUP,
    command="backup snapshot c-20261202T031500Z",
    reason="r",
    backup="c-20261202T031500Z",
)


class Node:
    """An MMP that answers `backup snapshot` with ``answer`` and serves ``files``."""

    def __init__(self, files: dict[str, bytes], answer: str = "SUCCESS\n") -> None:
        self.files = files
        self.answer = answer

    async def run(self, command: str, *, stdin: str | None = None) -> CommandOutput:
        status = 1 if "FAILURE" in self.answer else 0
        return CommandOutput("n1", command, self.answer, "", status, 0.0)

    async def download_to(self, remote_name: str, local_path: Path, limit: int) -> FileCopy:
        data = self.files[remote_name]
        local_path.write_bytes(data)
        local_path.chmod(0o600)
        return FileCopy(len(data), hashlib.sha256(data).hexdigest())


def _files(stated: str | None = None) -> dict[str, bytes]:
    dump = b"PGDMP dump"
    about = {"sha256": stated or hashlib.sha256(dump).hexdigest()}
    return {"c-20261202T031500Z.bak": dump, "c-20261202T031500Z.json": json.dumps(about).encode()}


async def test_a_backup_is_downloaded_with_its_checksums(tmp_path: Path) -> None:
    _, saved = await take_backup(Node(_files()), STEP, tmp_path, "c", keep=5)
    folder = tmp_path / "c" / "c-20261202T031500Z"
    lines = (folder / SUMS).read_text().splitlines()
    assert [line.split("  ")[1] for line in lines] == [
        "n1/c-20261202T031500Z.bak",
        "n1/c-20261202T031500Z.json",
    ]
    assert (folder / "n1").stat().st_mode & 0o777 == 0o700
    assert "backup c-20261202T031500Z saved in" in saved.describe()


async def test_a_download_that_is_not_the_backup_fails_the_step(tmp_path: Path) -> None:
    with pytest.raises(StepFailedError, match="the download is not the backup"):
        await take_backup(Node(_files(stated="ab" * 32)), STEP, tmp_path, "c", keep=5)


async def test_a_refused_snapshot_fails_the_step_with_the_mmp_reason(tmp_path: Path) -> None:
    node = Node({}, answer="FAILURE: backup 'c-20261202T031500Z' already exists\n")
    with pytest.raises(StepFailedError, match="already exists"):
        await take_backup(node, STEP, tmp_path, "c", keep=5)
    assert not (tmp_path / "c").exists()  # nothing downloaded, nothing kept


def test_only_the_newest_sets_are_kept(tmp_path: Path) -> None:
    for i in range(5):
        folder = tmp_path / f"c-{i}"
        folder.mkdir()
        os.utime(folder, (time.time() - 100 + i, time.time() - 100 + i))
    removed = prune_sets(tmp_path, keep=2, current="c-4")
    assert sorted(p.name for p in removed) == ["c-0", "c-1", "c-2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-3", "c-4"]
