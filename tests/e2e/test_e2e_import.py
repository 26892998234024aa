"""End to end on a 3-node cmslab built by hand: `reconcile import` adopts it.

The cluster is built over SSH as an admin would (docs/cmslab-semantics.md, "Build a cluster
by hand": SFTP the files, `localnode`, `certs`, `initialize` on one node, `join` on the
others). Then: import with the keys (the copies are the lab's files, keys 0600 in 0700
folders) and without them (`key_on_node`), each planning no changes; an existing ``-o``
refused without ``--force``; refusals (a wrong password, a member whose SSH is down) with
one line per problem and nothing written. One lab for the module; the member is stopped
by the last test.
"""

from __future__ import annotations

import asyncio
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cmslab import labfiles
from cmslab.config import NodeConfig

from .lab_harness import E2ELab, Result, lab_fixture

pytestmark = pytest.mark.lab
LAB_BASE = "127.0.27.1"
UPLOADS = ("dbclusterserver.key", "dbclusterserver.cer", "dbclusterclient.key")
UPLOADS += ("dbclusterclient.cer", "labRootca.cer")


def _connect(lab: E2ELab, node: NodeConfig) -> Any:
    return lab.connect(node.name)


async def _mmp(lab: E2ELab, node: NodeConfig, command: str) -> str:
    async with _connect(lab, node) as conn:
        result = await conn.run(command, check=False, timeout=60)
    out = str(result.stdout or "")
    assert result.exit_status == 0 and "FAILURE" not in out, f"{node.name}: {command}: {out}"
    return out


async def _prepare(lab: E2ELab, node: NodeConfig) -> None:
    """As an admin would: SFTP the five files, then `localnode` and `certs`."""
    local = (labfiles.server_key(node.name), labfiles.server_cert(node.name))
    local += (labfiles.CLIENT_KEY, labfiles.CLIENT_CERT, labfiles.CA_CERT)
    async with _connect(lab, node) as conn, conn.start_sftp_client() as sftp:
        for src, name in zip(local, UPLOADS, strict=True):
            await sftp.put(str(lab.root / src), name)
    await _mmp(lab, node, "database cluster localnode a")
    await _mmp(lab, node, "database cluster certs " + " ".join(UPLOADS))


async def _until(
    lab: E2ELab, node: NodeConfig, formed: Callable[[str], bool], timeout: float = 90
) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    out = ""
    while asyncio.get_running_loop().time() < deadline:
        out = await _mmp(lab, node, "database cluster status")
        if formed(out):
            return out
        await asyncio.sleep(0.3)
    raise AssertionError(f"{node.name}: the status never showed it:\n{out}")


async def _build_by_hand(lab: E2ELab) -> None:
    first, *others = lab.cfg.nodes
    await asyncio.gather(*(_prepare(lab, n) for n in lab.cfg.nodes))
    for node, command in [
        (first, "database cluster initialize"),
        *((n, f"database cluster join {first.address}") for n in others),
    ]:
        await _mmp(lab, node, command)
        await _until(lab, node, lambda s, c=command: f"'{c}' (Success)" in s)
    for n in lab.cfg.nodes:  # formed: every view shows the master and two replicas in sync
        await _until(lab, n, lambda s: s.count("( In Sync )") == 2 and first.address in s)


@pytest.fixture(scope="module")
def lab() -> Iterator[E2ELab]:
    for one in lab_fixture(LAB_BASE, 3):
        asyncio.run(_build_by_hand(one))
        yield one


def _import(lab: E2ELab, folder: Path, *extra: str, env: dict[str, str] | None = None) -> Result:
    folder.mkdir(parents=True, exist_ok=True)
    known_hosts = folder / "known_hosts"
    if not known_hosts.exists():
        shutil.copy(lab.paths.known_hosts, known_hosts)
    first = lab.cfg.nodes[0]
    return lab.reconcile(
        "import",
        "--host",
        f"{first.address}:{first.ssh_port}",
        "--user",
        "admin",
        "--password-env",
        "CMSLAB_PASSWORD",
        "--known-hosts",
        known_hosts,
        "--cluster",
        "adopted",
        "-o",
        folder / "spec.yaml",
        *extra,
        env=env,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_import_with_keys_copies_the_lab_files_and_plans_no_changes(
    lab: E2ELab, tmp_path: Path
) -> None:
    out = tmp_path / "adopted"
    result = _import(lab, out, "--fetch-keys")
    assert result.code == 0, result.text
    assert "Imported cluster adopted: 3 database node(s)" in result.stdout
    assert "master cms-lab-1 (127.0.27.1)" in result.stdout
    root = lab.root
    assert (out / "certs/labRootca.cer").read_bytes() == (root / labfiles.CA_CERT).read_bytes()
    client = (out / "certs/dbclusterclient.cer").read_bytes()
    assert client == (root / labfiles.CLIENT_CERT).read_bytes()
    for name in lab.names:
        cert = out / "certs" / name / "dbclusterserver.cer"
        assert cert.read_bytes() == (root / labfiles.server_cert(name)).read_bytes()
        key = out / "keys" / name / "dbclusterserver.key"
        assert key.read_bytes() == (root / labfiles.server_key(name)).read_bytes()
        assert _mode(key) == 0o600 and _mode(key.parent) == 0o700
    assert _mode(out / "keys/dbclusterclient.key") == 0o600 and _mode(out / "keys") == 0o700
    text = (out / "spec.yaml").read_text()
    assert text.startswith("# Imported by `reconcile import` from 127.0.27.1:")
    assert "known_hosts: known_hosts" in text and "master: cms-lab-1" in text
    plan = lab.reconcile("plan", out / "spec.yaml", "--detailed-exitcode")
    assert plan.code == 0, plan.text
    assert "No changes." in plan.stdout

    again = _import(lab, out, "--fetch-keys")
    assert again.code == 1
    assert again.stderr.strip().splitlines() == [
        f"error: -o {out / 'spec.yaml'}: exists; give --force to replace it"
    ]
    assert (out / "spec.yaml").read_text() == text
    forced = _import(lab, out, "--fetch-keys", "--force")
    assert forced.code == 0, forced.text


def test_import_without_keys_leaves_them_on_the_nodes(lab: E2ELab, tmp_path: Path) -> None:
    out = tmp_path / "adopted"
    result = _import(lab, out)
    assert result.code == 0, result.text
    assert not (out / "keys").exists()
    text = (out / "spec.yaml").read_text()
    assert "key_on_node: dbclusterserver.key" in text and "key: keys/" not in text
    plan = lab.reconcile("plan", out / "spec.yaml", "--detailed-exitcode")
    assert plan.code == 0, plan.text
    assert "No changes." in plan.stdout


def test_a_wrong_password_refuses_naming_the_host(lab: E2ELab, tmp_path: Path) -> None:
    out = tmp_path / "adopted"
    result = _import(lab, out, env=lab.env(CMSLAB_PASSWORD="not-the-password"))
    assert result.code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: 127.0.27.1 (--host): cannot be read: authentication failed")
    assert sorted(p.name for p in out.iterdir()) == ["known_hosts"]  # nothing written


def test_a_member_whose_ssh_is_down_refuses_and_nothing_is_written(
    lab: E2ELab, tmp_path: Path
) -> None:
    lab.fault("cms-lab-3", "kill")  # SSH closed; the others keep the majority
    out = tmp_path / "adopted"
    result = _import(lab, out, "--fetch-keys")
    assert result.code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: 127.0.27.3 (listed by 127.0.27.1): cannot be read: ")
    assert sorted(p.name for p in out.iterdir()) == ["known_hosts"]
