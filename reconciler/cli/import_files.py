"""What `reconcile import` writes: the copied files, then the spec, validated before it lands.

:func:`check_copies` looks at every file the layout puts next to the spec before anything
is written: one that exists with the same content is left alone; one with other content
(or that is no regular file) refuses the import unless ``--force``. :func:`write_copies`
writes them whole (a temporary file renamed into place): certificates 0644 under
``certs/``, keys 0600 in 0700 folders under ``keys/``. :func:`put_spec` writes the spec to a
temporary file in the same folder, loads it with the real loader
(:func:`reconciler.spec.loader.load_spec`: every rule and file check) and only then
renames it over ``-o``; when it does not load, the files this run created are removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.common.diagnostics import Diagnostic
from reconciler.common.errors import SpecError
from reconciler.common.file_limits import CERT_LIMIT, FileReadError, read_bounded
from reconciler.common.private_files import FILE_MODE, private_dir
from reconciler.plan.adoption_files import LocalCopy
from reconciler.spec.loader import LoadedSpec, load_spec, spec_error

CERT_MODE = 0o644  # public certificates, meant to be committed with the spec


@dataclass
class Written:
    """What this run created (removed again when the spec does not load)."""

    files: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)

    def undo(self) -> None:
        for path in reversed(self.files):
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in reversed(self.folders):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty


def check_copies(
    base: Path, copies: Sequence[LocalCopy], data: Mapping[str, bytes], *, force: bool
) -> tuple[list[LocalCopy], list[str]]:
    """The copies to write (an identical file is kept) and why others cannot be."""
    todo: list[LocalCopy] = []
    problems: list[str] = []
    for copy in copies:
        path = base / copy.path
        if not path.exists() and not path.is_symlink():
            todo.append(copy)
            continue
        try:
            same = read_bounded(path, CERT_LIMIT, "file") == data[copy.path]
        except FileReadError as exc:
            problems.append(f"{path}: {exc.reason}: it would be replaced by {copy.node}'s file")
            continue
        if same:
            continue
        if force:
            todo.append(copy)
        else:
            problems.append(
                f"{path} exists with other content than {copy.node}'s {copy.remote_name}: "
                "give --force to replace it"
            )
    return todo, problems


def _folder(base: Path, copy: LocalCopy, written: Written) -> Path:
    folder = (base / copy.path).parent
    missing = [p for p in (folder, *folder.parents) if not p.exists() and base in p.parents]
    if copy.is_key:
        private_dir(folder)
    else:
        folder.mkdir(parents=True, exist_ok=True)
    written.folders += reversed(missing)
    return folder


def _write_whole(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_copies(
    base: Path, copies: Sequence[LocalCopy], data: Mapping[str, bytes], written: Written
) -> None:
    for copy in copies:
        path = _folder(base, copy, written) / Path(copy.path).name
        existed = path.exists()
        _write_whole(path, data[copy.path], FILE_MODE if copy.is_key else CERT_MODE)
        if not existed:
            written.files.append(path)


def put_spec(out: Path, text: str, written: Written) -> LoadedSpec:
    """Write, load (the real loader), then rename over ``out``; SpecError if it does not load
    (its diagnostics name ``out``, which is then left as it was)."""
    folder = out.parent if str(out.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".yaml", dir=folder)

    def named(diagnostics: Sequence[object]) -> tuple[Diagnostic, ...]:
        return tuple(
            replace(d, file=str(out)) if d.file == tmp else d
            for d in diagnostics
            if isinstance(d, Diagnostic)
        )

    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, CERT_MODE)
        loaded = load_spec(Path(tmp))
        os.replace(tmp, out)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, SpecError):
            written.undo()
            raise spec_error(out, named(exc.diagnostics)) from None
        raise
    return LoadedSpec(
        spec=loaded.spec, path=out, base_dir=loaded.base_dir, warnings=named(loaded.warnings)
    )
