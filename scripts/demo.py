"""`make demo`: the main job on the embedded lab, narrated.

1. offline: validate the example spec and plan it against a captured snapshot;
2. live: start a 3-node cmslab, validate its spec, plan, apply, status;
3. prove it: write a row on the master and read it back from every replica (psycopg, mutual TLS);
4. print how to explore further.
Running it twice works: the lab resumes and the second apply has nothing to do.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _lab_dir() -> Path:
    """`./.lab`, unless (as root) the `postgres` user could not reach it: then a /tmp directory."""
    preferred = ROOT / ".lab"
    if os.geteuid() != 0:
        return preferred
    for parent in [ROOT, *ROOT.parents]:
        if not parent.stat().st_mode & 0o001:  # not traversable by others
            digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
            return Path("/tmp") / f"cmslab-demo-{digest}"
    return preferred


LAB_DIR = _lab_dir()


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(*argv: str, ok: tuple[int, ...] = (0,), env: dict[str, str] | None = None) -> int:
    shown = " ".join(shlex.quote(a) for a in argv)
    print(f"$ {shown}", flush=True)
    proc = subprocess.run(argv, env=env, cwd=ROOT, check=False)
    if proc.returncode not in ok:
        sys.exit(f"demo: `{shown}` exited {proc.returncode}")
    return proc.returncode


def tool(name: str) -> str:
    return str(BIN / name)


def offline_part() -> None:
    banner("Offline: validate the example spec, plan it against a captured snapshot")
    run(tool("reconcile"), "validate", "specs/example.yaml")
    run(
        tool("reconcile"),
        "plan",
        "specs/example.yaml",
        "--observed",
        "specs/snapshots/example-fresh.yaml",
        "--detailed-exitcode",
        ok=(0, 2),
    )


def live_part() -> None:
    banner("Live: start a 3-node cmslab (real SSH, real PostgreSQL, real TLS)")
    run(tool("cmslab"), "--dir", str(LAB_DIR), "up", "--nodes", "3")
    env = dict(os.environ)
    env["CMSLAB_PASSWORD"] = (LAB_DIR / "admin-password").read_text(encoding="utf-8").strip()
    spec = str(LAB_DIR / "lab.yaml")

    banner("Validate the lab spec and plan against the live nodes")
    run(tool("reconcile"), "validate", spec, env=env)
    run(tool("reconcile"), "plan", spec, "--detailed-exitcode", ok=(0, 2), env=env)

    banner("Apply: converge the cluster")
    started = time.monotonic()
    run(tool("reconcile"), "apply", spec, "--yes", env=env)
    print(f"(apply took {time.monotonic() - started:.1f} s)")

    banner("Status: the MMP's view and the database's own view")
    run(tool("reconcile"), "status", spec, env=env)

    banner("Prove replication: write on the master, read on every replica (psycopg, verify-ca)")
    prove_replication(Path(spec), f"demo-{uuid.uuid4().hex[:8]}")

    banner("Explore further")
    print(
        f"""  export CMSLAB_PASSWORD=$(cat {LAB_DIR}/admin-password)
  .venv/bin/reconcile status {spec}
  .venv/bin/cmslab --dir {LAB_DIR} fault cms-lab-1 kill   # power loss on the master; re-election
  .venv/bin/reconcile status {spec}            # a new master; cms-lab-1 unreachable
  .venv/bin/cmslab --dir {LAB_DIR} fault cms-lab-1 revive # it comes back as a replica
  .venv/bin/reconcile plan {spec}              # the master move back to cms-lab-1
  .venv/bin/reconcile apply {spec} --yes       # state (lock, audit log) in {LAB_DIR}/.reconcile/
  ssh -p 2222 -o UserKnownHostsFile={LAB_DIR}/known_hosts admin@127.0.10.1   # the MMP by hand
  .venv/bin/cmslab --dir {LAB_DIR} down"""
    )


def prove_replication(spec_path: Path, marker: str) -> None:
    """Write on the master, read on every replica, through psycopg with the spec's client cert."""
    import psycopg

    from reconciler.spec.loader import load_spec, resolve_spec_path

    loaded = load_spec(spec_path)
    certs = loaded.spec.certificates
    common = (
        "dbname=cluster user=postgres port=5432 sslmode=verify-ca connect_timeout=5 "
        f"sslrootcert={resolve_spec_path(loaded, certs.ca)} "
        f"sslcert={resolve_spec_path(loaded, certs.client.cert)} "
        f"sslkey={resolve_spec_path(loaded, certs.client.key)}"
    )
    addresses = [n.address for n in loaded.spec.database_nodes]
    masters = []
    for address in addresses:
        with psycopg.connect(f"host={address} {common}") as conn:
            row = conn.execute("select pg_is_in_recovery()").fetchone()
            if row is not None and not row[0]:
                masters.append(address)
    if len(masters) != 1:
        sys.exit(f"demo: expected one master, found {masters}")
    master = masters[0]
    with psycopg.connect(f"host={master} {common}", autocommit=True) as conn:
        conn.execute("create table if not exists demo_rows (marker text primary key)")
        conn.execute("insert into demo_rows values (%s)", (marker,))
    print(f"wrote {marker!r} on the master {master}")
    for address in addresses:
        if address == master:
            continue
        deadline = time.monotonic() + 10
        while True:
            with psycopg.connect(f"host={address} {common}") as conn:
                row = conn.execute(
                    "select count(*) from demo_rows where marker = %s", (marker,)
                ).fetchone()
            if row is not None and row[0] == 1:
                print(f"read {marker!r} back on the replica {address}")
                break
            if time.monotonic() > deadline:
                sys.exit(f"demo: {marker!r} did not reach {address}")
            time.sleep(0.1)


def main() -> None:
    offline_part()
    live_part()


if __name__ == "__main__":
    main()
