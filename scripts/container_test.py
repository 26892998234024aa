"""`make container-test`: build the Containerfile with Debian's podman and run the image.

Run as root (rootful podman, vfs storage: no daemon, no fuse, no user namespaces needed;
CMS_PODMAN_DRIVER=overlay is several times faster where the kernel allows overlay mounts).
Idempotent and quick to rerun: podman's storage, the stand-in base image and the build
cache live in $CMS_PODMAN_DIR (default /var/tmp/cms-reconciler-podman), one store per
storage driver. It

1. installs podman, debootstrap and runc with apt-get when one is missing;
2. builds a stand-in for docker.io/library/python:3.11-slim (debootstrap minbase bookworm
   with Python 3.11, `podman import`) when storage has none: no image registry is reachable;
3. builds the image with `--format docker` (keeps the HEALTHCHECK), the host's CA bundle
   mounted for pip (downloads go through a TLS-intercepting proxy here), then removes the
   untagged images this build did not use, so the store keeps one build's cache;
4. inspects it: HEALTHCHECK present, user 10001, no layer added by the Containerfile holds a
   wheel or a file deleted again later (a whiteout: dead weight), every installed
   distribution is the version constraints.txt pins;
5. runs `reconcile --help`, `--version`, `validate` and an offline `plan` on a copy of specs/
   (keys owned by uid 10001, mode 0600, mounted read-only), and `watch` detached with
   `--metrics-port 9555` and with `--metrics-port 0`: `podman healthcheck run` must become
   healthy (at most 60 s), then `podman stop` must end it with exit code 0; and the health
   check must fail in a container where no watch serves /healthz.

Containers run with `--network none` (their own loopback, nothing of the host's), the build
with `--network host` (pip downloads only). PASS/FAIL per check; exit 1 on any failure.
Timings are printed, never judged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("CMS_PODMAN_DIR", "/var/tmp/cms-reconciler-podman"))
DRIVER = os.environ.get("CMS_PODMAN_DRIVER", "vfs")
BASE = "docker.io/library/python:3.11-slim"
IMAGE = "localhost/cms-reconciler:container-test"
MIRROR = os.environ.get("CMS_DEBOOTSTRAP_MIRROR", "http://deb.debian.org/debian")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HEALTHCHECK = ["python", "/usr/local/lib/cms-reconciler/healthcheck.py"]
HEALTHY_WITHIN = 60.0
PASSWORD = ["-e", "CMS_MMP_PASSWORD=container-test"]  # the spec names it; never used offline
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{run}/libpod"
"""

failures: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""), flush=True)
    if not ok:
        failures.append(name)
    return ok


def run(
    cmd: Sequence[str], *, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=env)


def podman_cmd(*args: str) -> list[str]:
    storage = ["--root", str(STATE / DRIVER), "--runroot", str(STATE / "run" / DRIVER)]
    return ["podman", *storage, "--storage-driver", DRIVER, *args]


def podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run(podman_cmd(*args), timeout=timeout)


def tail(text: str, lines: int = 25) -> str:
    return "\n    ".join(["", *text.strip().splitlines()[-lines:]])


def timed(label: str, action: Callable[[], bool]) -> bool:
    start = time.monotonic()
    ok = action()
    print(f"     {label} took {time.monotonic() - start:.1f} s", flush=True)
    return ok


# --- setup -----------------------------------------------------------------------------
def install_tools() -> bool:
    missing = [t for t in ("podman", "debootstrap", "runc") if shutil.which(t) is None]
    if missing:
        print(f"     apt-get install {' '.join(missing)}", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        update = run(["apt-get", "update", "-qq"], timeout=600, env=env)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
        inst = run(install, timeout=900, env=env)
        if update.returncode or inst.returncode:
            return check("tools installed", False, tail(update.stderr + inst.stderr))
    return check(
        "tools installed (podman, debootstrap, runc)", True, f"{podman_version()}, {DRIVER}"
    )


def podman_version() -> str:
    result = run(["podman", "--version"])
    return result.stdout.strip() or result.stderr.strip()


def prepare_state() -> None:
    """Storage under STATE; runtime state under STATE/run, wiped after a reboot."""
    run_dir = STATE / "run"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    stamp = run_dir / "boot_id"
    if stamp.exists() and stamp.read_text().strip() != boot_id:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(boot_id + "\n")
    conf = STATE / "containers.conf"
    conf.write_text(CONTAINERS_CONF.format(run=run_dir))
    os.environ["CONTAINERS_CONF"] = str(conf)


def ensure_base() -> bool:
    if podman("image", "exists", BASE).returncode == 0:
        return check("stand-in base image present", True, f"{BASE} (cached)")
    rootfs = STATE / "base-rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    include = "python3,python3-pip,python3-venv,python-is-python3,ca-certificates"
    boot = run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={include}",
            "bookworm",
            str(rootfs),
            MIRROR,
        ],
        timeout=1800,
    )
    if boot.returncode:
        return check("stand-in base image built", False, tail(boot.stdout + boot.stderr))
    (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / cache).glob("*"):
            if entry.is_file():
                entry.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    changes = [
        "--change",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change",
        'CMD ["python3"]',
    ]
    imported = subprocess.run(
        podman_cmd("import", *changes, "-", BASE),
        stdin=tar.stdout,
        capture_output=True,
        text=True,
        timeout=900,
    )
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    ok = imported.returncode == 0
    return check("stand-in base image built", ok, BASE if ok else tail(imported.stderr))


# --- build and inspect -------------------------------------------------------------------
def build() -> bool:
    mounts = ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.exists() else []
    result = podman(
        "build", "--format", "docker", "--pull=never", "--network", "host", *mounts,
        "-t", IMAGE, "-f", str(ROOT / "Containerfile"), str(ROOT),
        timeout=3600,
    )  # fmt: skip
    if result.returncode == 0:
        prune_stale_cache(set(re.findall(r"^--> ([0-9a-f]{11,})$", result.stdout, re.M)))
    cached = result.stdout.count("Using cache")
    return check(
        "image built (podman build --format docker)",
        result.returncode == 0,
        f"{IMAGE}, {cached} cached steps" if result.returncode == 0 else tail(result.stdout),
    )


def prune_stale_cache(keep: set[str]) -> None:
    """Remove untagged images this build did not use (older source versions, superseded
    images): with vfs each holds a whole copy of the file system."""
    for _ in range(50):  # leaves first: an image with children cannot go yet
        untagged = podman("images", "-a", "-q", "--no-trunc", "--filter", "dangling=true")
        stale = [
            image
            for image in untagged.stdout.split()
            if not any(image.removeprefix("sha256:").startswith(k) for k in keep)
        ]
        if not [image for image in stale if podman("rmi", image).returncode == 0]:
            return


def inspect_image() -> None:
    info = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    config = info.get("Config", {})
    test = (info.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test", [])
    check("HEALTHCHECK kept", test[1:] == HEALTHCHECK, " ".join(test) or "none")
    check("runs as uid 10001", config.get("User", "").split(":")[0] == "10001", config.get("User"))
    print(f"     image size {info['Size'] / 1e6:.1f} MB", flush=True)
    history = json.loads(podman("history", "--format", "json", IMAGE).stdout)
    for layer in history:
        if layer.get("size", 0) > 0:
            created = " ".join(layer.get("CreatedBy", layer.get("createdBy", "")).split())
            print(f"     layer {layer['size'] / 1e6:7.1f} MB  {created[:90]}", flush=True)
    base_layers = len(json.loads(podman("image", "inspect", BASE).stdout)[0]["RootFS"]["Layers"])
    archive = STATE / "image.tar"
    archive.unlink(missing_ok=True)
    saved = podman("save", "--format", "docker-archive", "-o", str(archive), IMAGE, timeout=600)
    if saved.returncode:
        check("image saved for the layer check", False, tail(saved.stderr))
        return
    wheels: list[str] = []
    whiteouts: list[str] = []
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer_name in manifest[0]["Layers"][base_layers:]:
            with tarfile.open(fileobj=outer.extractfile(layer_name), mode="r|*") as layer:
                for member in layer:
                    name = member.name.lstrip("./")
                    if name.endswith(".whl") or "wheels/" in f"{name}/":
                        wheels.append(name)
                    if Path(name).name.startswith(".wh."):
                        whiteouts.append(name)
    archive.unlink()
    check("no layer holds a wheel", not wheels, ", ".join(wheels[:5]))
    check(
        "no layer deletes what another added (no whiteouts)",
        not whiteouts,
        ", ".join(whiteouts[:5]),
    )


# --- run -------------------------------------------------------------------------------
def specs_copy() -> Path:
    """specs/ as an operator would mount it: owned by uid 10001, keys 0600."""
    specs = STATE / "work" / "specs"
    shutil.rmtree(specs, ignore_errors=True)
    shutil.copytree(ROOT / "specs", specs)
    for path in [specs, *specs.rglob("*")]:
        os.chown(path, 10001, 10001)
    for key in specs.rglob("*.key"):
        key.chmod(0o600)
    return specs


def one_shot(specs: Path, name: str, args: list[str], rc: int, expect: str) -> None:
    mount = ["-v", f"{specs}:/specs:ro"]
    result = podman("run", "--rm", "--network", "none", *mount, *PASSWORD, IMAGE, *args)
    output = result.stdout + result.stderr
    check(
        f"{name} (exit {result.returncode})",
        result.returncode == rc and expect in output,
        f"want exit {rc} and {expect!r}:{tail(output)}"
        if result.returncode != rc or expect not in output
        else "",
    )


def health(container: str) -> tuple[bool, str]:
    result = podman("healthcheck", "run", container, timeout=30)
    said = (result.stdout + result.stderr).strip()
    return result.returncode == 0, said or ("healthy" if result.returncode == 0 else "unhealthy")


def probe(container: str) -> str:
    """What the health check itself prints (which URL it asked)."""
    result = podman("exec", container, *HEALTHCHECK, timeout=30)
    return " ".join((result.stdout + result.stderr).split())


def watch(specs: Path, port: str) -> None:
    name = f"cms-reconciler-test-{port}"
    podman("rm", "-f", "-v", name)
    mount = ["-v", f"{specs}:/specs:ro"]
    started = podman(
        "run", "-d", "--name", name, "--network", "none", *mount, *PASSWORD, IMAGE,
        "watch", "/specs/example.yaml", "--interval", "5", "--metrics-port", port,
    )  # fmt: skip
    if started.returncode:  # podman logs (not fails on) the missing systemd health timer
        check(f"watch --metrics-port {port} started", False, tail(started.stderr))
        return
    start = time.monotonic()
    ok, said = health(name)
    while not ok and time.monotonic() - start < HEALTHY_WITHIN:
        time.sleep(1)
        ok, said = health(name)
    waited = time.monotonic() - start
    asked = probe(name)  # e.g. "http://127.0.0.1:9555/healthz: 200"
    follows = f":{port}/healthz: 200" in asked if port != "0" else ":9464/" not in asked
    check(
        f"watch --metrics-port {port}: podman healthcheck run healthy",
        ok and follows,
        f"{said} after {waited:.1f} s; the check asked {asked}",
    )
    stopped = podman("stop", "-t", "30", name, timeout=60)
    code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    logs = podman("logs", name)
    check(
        f"watch --metrics-port {port}: podman stop -> exit code 0",
        stopped.returncode == 0 and code == "0",
        f"exit code {code}"
        if code == "0"
        else f"exit code {code}:{tail(logs.stdout + logs.stderr)}",
    )
    podman("rm", "-f", "-v", name)


LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m\n"
    "for d in m.distributions(): print(d.metadata['Name'], d.version)"
)


def pinned_versions_installed() -> None:
    """Every distribution in the image is the version constraints.txt pins."""
    pins = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        name, sep, version = raw.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[canonical(name)] = version
    result = podman(
        "run", "--rm", "--network", "none", "--entrypoint", "python", IMAGE,
        "-c", LIST_DISTRIBUTIONS,
    )  # fmt: skip
    installed = dict(line.split() for line in result.stdout.splitlines())
    own = canonical(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"])
    wrong = [
        f"{name}=={version} (pinned: {pins.get(canonical(name))})"
        for name, version in sorted(installed.items())
        if canonical(name) != own and pins.get(canonical(name)) != version
    ]
    ok = result.returncode == 0 and bool(installed) and not wrong
    check(
        f"the image holds the pinned versions ({len(installed) - 1} distributions)",
        ok,
        "" if ok else ", ".join(wrong) or tail(result.stderr),
    )


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def unhealthy_without_watch() -> None:
    name = "cms-reconciler-test-idle"
    podman("rm", "-f", "-v", name)
    started = podman(
        "run", "-d", "--name", name, "--network", "none", "--entrypoint", "sleep", IMAGE, "120"
    )
    ok, said = health(name) if started.returncode == 0 else (True, started.stderr.strip())
    check("health check fails when no watch serves /healthz", not ok, f"{said}; {probe(name)}")
    podman("rm", "-f", "-t", "0", "-v", name)


def main() -> int:
    if os.geteuid() != 0:
        check(
            "running as root (rootful podman)",
            False,
            "run it as root, e.g. sudo make container-test",
        )
        return 1
    STATE.mkdir(parents=True, exist_ok=True)
    if not install_tools():
        return 1
    prepare_state()
    if not timed("stand-in base image", ensure_base) or not timed("image build", build):
        return 1
    inspect_image()
    pinned_versions_installed()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    specs = specs_copy()
    one_shot(specs, "reconcile --help", ["--help"], 0, "usage: reconcile")
    one_shot(specs, "reconcile --version", ["--version"], 0, f"reconcile {version}")
    one_shot(
        specs,
        "reconcile validate",
        ["validate", "/specs/example.yaml"],
        0,
        "OK /specs/example.yaml",
    )
    plan = ["plan", "/specs/example.yaml", "--observed", "/specs/snapshots/example-drifted.yaml"]
    one_shot(
        specs,
        "offline reconcile plan",
        [*plan, "--detailed-exitcode"],
        2,
        "Drift (spec vs observed)",
    )
    for tool, args, expect in (("git", ["--version"], "git version"), ("ssh", ["-V"], "OpenSSH")):
        result = podman("run", "--rm", "--network", "none", "--entrypoint", tool, IMAGE, *args)
        said = (result.stdout + result.stderr).strip()
        line = next((t for t in said.splitlines() if expect in t), tail(said))
        check(f"{tool} in the image (watch --git)", result.returncode == 0 and expect in said, line)
    watch(specs, "9555")
    watch(specs, "0")
    unhealthy_without_watch()
    print(f"container-test: {'FAIL: ' + ', '.join(failures) if failures else 'PASS'}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
