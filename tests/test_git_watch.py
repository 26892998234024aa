"""`watch --git` without a cluster: the follower against real repositories on this machine
(file URLs), the checkouts the loops read, which loops a new revision wakes, signatures,
and an invalid commit reported with its revision and author."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import git_servers
import pytest
from git_servers import SigningKeys, SpecRepo, make_spec_repo
from structlog.testing import capture_logs

from reconciler.common.diagnostics import Diagnostic, Severity
from reconciler.common.errors import SpecError
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.model import Plan, Step
from reconciler.source.git_source import GitSource
from reconciler.source.revision import SignatureState
from reconciler.spec.loader import LoadedSpec
from reconciler.spec.model import ClusterSpec
from reconciler.watch.git_checkouts import GitCheckouts
from reconciler.watch.git_follower import GitFollower, NewRevision, wake_concerned
from reconciler.watch.loop import WatchConfig
from reconciler.watch.runner_interface import ApplyOutcome, SpecVersion
from reconciler.watch.supervisor import WatchSupervisor

signing_keys = git_servers.signing_keys
SPEC = "version: 1\ncluster: {name}\nmaster: a\n# {note}\n"


def spec_files(**clusters: str) -> dict[str, str | None]:
    return {f"specs/{n}.yaml": SPEC.format(name=n, note=note) for n, note in clusters.items()}


@pytest.fixture
def repo(tmp_path: Path) -> SpecRepo:
    base = tmp_path / "served"
    base.mkdir()
    spec_repo = make_spec_repo(base, "specs")
    spec_repo.commit(spec_files(lon="one", par="one"), "two clusters")
    return spec_repo


def make_source(repo: SpecRepo, tmp_path: Path) -> tuple[GitSource, GitCheckouts]:
    source = GitSource(f"file://{repo.bare}", "main", "specs", tmp_path / "state" / "git")
    return source, GitCheckouts(source.root_dir, source.path)


class Collect:
    def __init__(self) -> None:
        self.seen: list[NewRevision] = []

    def __call__(self, new: NewRevision) -> None:
        self.seen.append(new)


async def test_follower_checks_out_each_new_head_and_says_what_changed(
    repo: SpecRepo, tmp_path: Path
) -> None:
    source, checkouts = make_source(repo, tmp_path)
    seen = Collect()
    follower = GitFollower(source, checkouts, seen, interval=3600)
    await follower.sync("start")
    assert seen.seen[0].changed is None and seen.seen[0].revision.sha == repo.head()
    assert checkouts.folder == source.checkouts / repo.head() / "specs"
    first = repo.head()
    assert sorted(checkouts.discover([])) == [
        checkouts.stable / "cms-fra-1.yaml",  # git_servers' own file: a spec by its keys
        checkouts.stable / "lon.yaml",
        checkouts.stable / "par.yaml",
    ]
    located = checkouts.locate(checkouts.stable / "lon.yaml")
    assert located.path == checkouts.folder / "lon.yaml" and located.commit is not None
    assert located.commit.sha == first

    await follower.sync("interval")  # nothing new: nothing handed over
    assert len(seen.seen) == 1

    repo.commit(spec_files(lon="two"), "change lon")
    await follower.sync("webhook")
    new = seen.seen[-1]
    assert new.changed == frozenset({"lon.yaml"}) and new.previous is not None
    assert new.previous.sha == first and new.revision.subject == "change lon"
    # The checkout of the first revision is still there, untouched: a cycle reading it
    # while the second was written saw one revision.
    assert "# one" in (source.checkouts / first / "specs" / "lon.yaml").read_text()
    assert "# two" in (checkouts.folder / "lon.yaml").read_text()


async def test_a_webhook_during_a_fetch_is_one_more_fetch(repo: SpecRepo, tmp_path: Path) -> None:
    source, checkouts = make_source(repo, tmp_path)
    follower = GitFollower(source, checkouts, Collect(), interval=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    await _until(lambda: follower.current is not None)
    fetches = follower.fetches
    for _ in range(5):  # a burst: all before the follower runs again
        follower.trigger("webhook")
    await _until(lambda: follower.fetches > fetches)
    await asyncio.sleep(0.5)
    assert follower.fetches == fetches + 1
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_the_checkout_of_the_last_run_is_put_in_force_at_start(
    repo: SpecRepo, tmp_path: Path
) -> None:
    source, checkouts = make_source(repo, tmp_path)
    await GitFollower(source, checkouts, Collect(), interval=3600).sync("start")
    again = make_source(repo, tmp_path)
    seen = Collect()
    follower = GitFollower(again[0], again[1], seen, interval=3600)
    await follower.resume()  # no fetch: the remote may be down
    assert follower.fetches == 0
    assert again[1].revision is not None and again[1].revision.sha == repo.head()
    assert seen.seen[0].changed is None


async def test_only_verified_heads_are_acted_on(
    repo: SpecRepo, tmp_path: Path, signing_keys: SigningKeys
) -> None:
    repo.commit(spec_files(lon="signed"), "signed", sign_with=signing_keys.allowed)
    source, checkouts = make_source(repo, tmp_path)
    seen = Collect()
    follower = GitFollower(
        source, checkouts, seen, interval=3600, allowed_signers=signing_keys.allowed_signers
    )
    await follower.sync("start")
    verified = repo.head()
    assert follower.current is not None and follower.current.sha == verified
    assert follower.current.signature is SignatureState.VERIFIED
    assert follower.current.signer == signing_keys.principal

    for message, key in (("unsigned", None), ("signed by mallory", signing_keys.other)):
        repo.commit(spec_files(lon=message), message, sign_with=key)
        with capture_logs() as logs:
            await follower.sync("webhook")
            await follower.sync("interval")  # reported once, not every fetch
        refused = [e for e in logs if e["event"] == "revision refused: signature not verified"]
        assert len(refused) == 1, logs
        assert (
            refused[0]["sha"] == repo.head()
            and refused[0]["author"] == "Ada Admin <ada@example.com>"
        )
        assert refused[0]["signature"] == ("unsigned" if key is None else "bad")
        assert refused[0]["kept"].startswith(verified[:7])
        assert follower.current.sha == verified and len(seen.seen) == 1
        assert not (source.checkouts / repo.head()).exists()  # nothing of it checked out
        assert "signed" in (checkouts.folder / "lon.yaml").read_text()


# --- which loops a new revision wakes ------------------------------------------------------


def make_spec(cluster: str) -> ClusterSpec:
    return ClusterSpec.model_validate(
        {
            "version": 1,
            "cluster": cluster,
            "master": "a",
            "nodes": [{"name": "a", "address": "127.0.0.1"}],
            "certificates": {"ca": "ca.pem", "client": {"cert": "c.pem", "key": "c.key"}},
            "ssh": {"known_hosts": "known_hosts"},
        }
    )


class FileRunner:
    """Reads the cluster name from the file it is given; 'broken' makes it invalid."""

    def __init__(self, _path: Path) -> None:
        self.cycles = 0

    def load(self, path: Path) -> SpecVersion:
        text = path.read_text()
        if "broken" in text:
            raise SpecError(
                "invalid", (Diagnostic(Severity.ERROR, str(path), 4, 1, "x", "broken"),)
            )
        match = re.search(r"^cluster: (\S+)", text, re.M)
        assert match
        loaded = LoadedSpec(make_spec(match.group(1)), path, path.parent, ())
        return SpecVersion(loaded=loaded, digest=text)

    def fingerprint(self, path: Path, last: SpecVersion | None) -> str:
        return path.read_text()

    async def observe(self, version: SpecVersion) -> Observed:
        self.cycles += 1
        return Observed()

    def plan(self, version: SpecVersion, observed: Observed) -> Plan:
        return Plan(cluster=version.cluster)

    def verdict(self, version: SpecVersion, observed: Observed, plan: Plan) -> str:
        return "converged"

    async def apply(
        self,
        version: SpecVersion,
        observed: Observed,
        plan: Plan,
        steps: tuple[Step, ...],
        stop: asyncio.Event,
    ) -> ApplyOutcome:
        raise AssertionError("report mode")

    def certificate_days(self, version: SpecVersion, now: datetime) -> dict[str, float]:
        return {}

    def note_revision(self, version: SpecVersion, how: str) -> None:
        pass

    async def close(self) -> None:
        pass


async def _until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_new_revision_wakes_the_clusters_it_changes_and_follows_the_files(
    repo: SpecRepo, tmp_path: Path
) -> None:
    source, checkouts = make_source(repo, tmp_path)
    sup = WatchSupervisor(
        [checkouts.stable], FileRunner, WatchConfig(interval=3600), source=checkouts
    )
    woken: list[list[str]] = []

    def on_revision(new: NewRevision) -> None:
        woken.append(sorted(loop.name for loop in wake_concerned(sup, checkouts, new)))

    follower = GitFollower(source, checkouts, on_revision, interval=3600)
    await follower.sync("start")
    task = asyncio.create_task(sup.run(rediscover_every=3600))
    await _until(lambda: len(sup.loops) == 3 and all(lp.cycles for lp in sup.loops.values()))
    lon = sup.loops[checkouts.stable / "lon.yaml"]
    assert lon.current is not None and lon.current.commit is not None
    assert lon.current.revision_label == repo.head()[:7]

    repo.commit(spec_files(lon="two"), "change lon")
    await follower.sync("webhook")
    assert woken[-1] == ["lon"]
    await _until(lambda: lon.current is not None and "# two" in lon.current.digest)
    assert lon.current is not None and lon.current.commit is not None
    assert lon.current.commit.subject == "change lon"
    assert lon.last_summary is not None

    repo.commit({"specs/par.yaml": None, **spec_files(ber="new")}, "ber in, par out")
    await follower.sync("webhook")
    assert woken[-1] == []  # ber starts with a cycle of its own; par is gone
    assert sorted(p.name for p in sup.loops) == ["ber.yaml", "cms-fra-1.yaml", "lon.yaml"]

    repo.commit({"README.md": "not a spec\n"}, "docs only")
    await follower.sync("webhook")
    assert woken[-1] == []
    assert sup.watch_roots() == set()  # nothing for the file watcher: the follower wakes
    sup.stop()
    await asyncio.wait_for(task, 10)


async def test_an_invalid_commit_is_reported_with_its_revision_and_author(
    repo: SpecRepo, tmp_path: Path
) -> None:
    source, checkouts = make_source(repo, tmp_path)
    sup = WatchSupervisor(
        [checkouts.stable], FileRunner, WatchConfig(interval=3600), source=checkouts
    )
    follower = GitFollower(
        source, checkouts, lambda new: wake_concerned(sup, checkouts, new), interval=3600
    )
    await follower.sync("start")
    good = repo.head()
    task = asyncio.create_task(sup.run(rediscover_every=3600))
    await _until(lambda: len(sup.loops) == 3 and all(lp.cycles for lp in sup.loops.values()))
    lon = sup.loops[checkouts.stable / "lon.yaml"]
    repo.commit(spec_files(lon="broken"), "break lon")
    with capture_logs() as logs:
        await follower.sync("webhook")
        await _until(lambda: lon.cycles >= 2)
    invalid = next(e for e in logs if e["event"] == "spec invalid")
    assert invalid["sha"] == repo.head() and invalid["author"] == "Ada Admin <ada@example.com>"
    assert invalid["revision"] == f"{repo.head()[:7]} 'break lon'"
    assert invalid["kept"] == f"last valid spec stays in force ({good[:7]} 'two clusters')"
    summary = next(e for e in logs if e["event"] == "cycle" and e["cluster"] == "lon")
    assert summary["revision"] == good[:7] and summary["spec"].startswith("INVALID")

    git_servers.git("revert", "--no-edit", "HEAD", cwd=repo.work)  # a commit like any other
    git_servers.git("push", "-q", "origin", "HEAD:main", cwd=repo.work)
    await follower.sync("webhook")
    await _until(
        lambda: (
            lon.spec_file.attempted.commit is not None
            and lon.spec_file.attempted.commit.sha == repo.head()
            and lon.last_summary is not None
            and lon.last_summary.spec_valid
        )
    )
    assert lon.current is not None and lon.current.commit is not None
    assert lon.current.commit.subject.startswith('Revert "break lon"')
    sup.stop()
    await asyncio.wait_for(task, 10)


def test_names_are_relative_to_the_spec_folder(tmp_path: Path) -> None:
    checkouts = GitCheckouts(tmp_path / "git", "specs")
    sha = "a" * 40
    folder = tmp_path / "git" / "checkouts" / sha / "specs"
    names = checkouts.names(
        checkouts.stable / "lon.yaml",
        [folder / "certs" / "ca.pem", folder / ".." / "shared" / "ca.pem", Path("/etc/ca.pem")],
    )
    assert names == {"lon.yaml", "certs/ca.pem"}
    assert checkouts.follows(tmp_path / "git" / "current") and not checkouts.follows(tmp_path)
