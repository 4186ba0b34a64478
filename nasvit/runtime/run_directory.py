"""Run directories that know what they are: ``run.json`` records the kind of run and the inputs that define it.

Every command that writes a directory claims it first: ``train`` and ``search`` with :func:`claim`, ``export``
with :func:`publish`, which also writes into a staging directory and swaps it into place. A directory of another
kind, or of another run, is refused unless the user says what to do with it: ``resume`` continues it (refused when
a defining input differs), ``overwrite`` replaces it. A directory that holds files but is not a nasvit run is
never cleared: it may not be ours.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nasvit.errors import NasvitError

MANIFEST = "run.json"
FORMAT = "nasvit-run/1"


class RunDirectoryError(NasvitError):
    """An output directory that cannot be used as asked: another kind or run, a file, or not ours."""


def claim(
    directory: str | Path, kind: str, inputs: dict[str, Any], resume: bool = False, overwrite: bool = False
) -> Path:
    """Make ``directory`` the directory of a ``kind`` run defined by ``inputs``, or refuse.

    Args:
        directory: the output directory (created when missing).
        kind: what writes it: "train", "search", "export".
        inputs: what defines the run (space fingerprint, checkpoint digest, data, ...); JSON values.
        resume: continue the run already there; its inputs must equal ``inputs``.
        overwrite: clear a nasvit run of any kind that is there before writing.

    Returns:
        The directory, holding a ``run.json`` for this run.

    Raises:
        RunDirectoryError: see :func:`check`.
    """
    directory = Path(directory)
    continued = check(directory, kind, inputs, resume, overwrite)
    if not continued and directory.is_dir():
        _clear(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not continued or read_manifest(directory) is None:
        write_manifest(directory, kind, inputs)
    return directory


def publish(
    directory: str | Path, kind: str, inputs: dict[str, Any], write: Callable[[Path], None], overwrite: bool = False
) -> Path:
    """Write a run's files with ``write(staging_dir)`` beside ``directory``, then swap them into place.

    Readers see the old directory or the complete new one, never files of two runs: a failure (a verification
    error, an interrupt, a full disk) leaves ``directory`` as it was.

    Raises:
        RunDirectoryError: see :func:`check` (an existing run is replaced only with ``overwrite``).
    """
    directory = Path(directory)
    directory = directory.resolve() if directory.is_symlink() else directory  # swap the folder the link names
    check(directory, kind, inputs, resume=False, overwrite=overwrite)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(directory, ".partial")
    try:
        write(staging)
        write_manifest(staging, kind, inputs)
        for file in staging.rglob("*"):  # some writers (safetensors) make 0600 files; use the user's umask
            if file.is_file():
                file.chmod(0o666 & ~user_umask())
        if directory.exists():
            _swap(staging, directory)
        else:
            os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _swap(new: Path, directory: Path) -> None:
    """Put ``new`` in place of the existing ``directory``; on failure the old one is put back."""
    retired = _sibling(directory, ".old")
    os.replace(directory, retired)
    try:
        os.replace(new, directory)
    except BaseException:
        os.replace(retired, directory)
        raise
    shutil.rmtree(retired)


def check(directory: Path, kind: str, inputs: dict[str, Any], resume: bool, overwrite: bool) -> bool:
    """Raise unless ``directory`` may hold this run; True when the run already there is to be continued.

    Raises:
        RunDirectoryError: a file in the way; a non-empty directory that is not a nasvit run; without ``overwrite``,
            a run of another kind, or one of this kind without ``resume``; a resume whose inputs differ.
    """
    if directory.exists() and not directory.is_dir():
        raise RunDirectoryError(f"{directory} is a file, not a directory; pass another --out")
    if not directory.is_dir() or {entry.name for entry in directory.iterdir()} <= {MANIFEST}:
        return False  # empty, or claimed by a run that stopped before writing anything
    manifest = read_manifest(directory)
    if manifest is not None and manifest["kind"] == kind and not _has_progress(directory, kind):
        return False  # a run of this kind that failed before saving anything: start it again
    found = manifest["kind"] if manifest is not None else _legacy_kind(directory)
    if found is None or (overwrite and manifest is None):  # only a directory with run.json is ever cleared
        raise RunDirectoryError(
            f"{directory} is not empty and holds no nasvit run ({MANIFEST}); pass an empty or new --out"
        )
    if overwrite:
        return False
    if found != kind:
        raise RunDirectoryError(
            f"{directory} holds a nasvit {found} run, not a {kind} run; pass another --out (or --overwrite to "
            "replace it)"
        )
    if not resume:
        since = f" (started {manifest['created']})" if manifest is not None else ""
        again = "pass --resume to continue it, " if kind != "export" else ""
        raise RunDirectoryError(
            f"{directory} already holds a nasvit {kind} run{since}; {again}pass --overwrite to replace it, or "
            "another --out"
        )
    differences = input_differences(manifest["inputs"], inputs) if manifest is not None else []
    if differences:
        raise RunDirectoryError(
            f"cannot resume {directory} with other inputs ({'; '.join(differences)}); resume with the inputs it "
            "was started with, or pass another --out"
        )
    return True


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The parsed ``run.json`` of ``directory``, None when there is none.

    Raises:
        RunDirectoryError: the file exists but is not a nasvit run record.
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirectoryError(f"{path} is corrupt ({error}); pass another --out, or delete {path}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RunDirectoryError(f"{path} is not a nasvit run record (format {FORMAT!r}); pass another --out")
    return manifest


def write_manifest(directory: str | Path, kind: str, inputs: dict[str, Any]) -> None:
    """Write ``run.json`` (kind, inputs, creation date) into an existing directory."""
    record = {
        "format": FORMAT,
        "kind": kind,
        "inputs": inputs,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    (Path(directory) / MANIFEST).write_text(json.dumps(record, indent=2) + "\n")


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: saved -> current`` for every defining input that differs (a key missing on one side counts)."""
    keys = sorted(set(saved) | set(current))
    return [f"{key}: {saved.get(key)!r} -> {current.get(key)!r}" for key in keys if saved.get(key) != current.get(key)]


_LEGACY_MARKERS = {  # a run written before run.json: resumable, never cleared
    "train": "checkpoints/step*.pt",
    "search": "search.json",
    "export": "subnet.json",
}


_PROGRESS = {"train": "checkpoints", "finetune": "checkpoints", "search": "candidates.jsonl"}


def _has_progress(directory: Path, kind: str) -> bool:
    """Whether a run of ``kind`` saved results there (checkpoints, evaluated candidates; an export is whole)."""
    return (directory / _PROGRESS.get(kind, MANIFEST)).exists()


def _legacy_kind(directory: Path) -> str | None:
    """The kind of a run written before ``run.json`` existed, known by its own files; None if none is there."""
    return next((kind for kind, pattern in _LEGACY_MARKERS.items() if any(directory.glob(pattern))), None)


def _sibling(directory: Path, suffix: str) -> Path:
    """A new empty directory beside ``directory``, with the permissions the user's umask gives."""
    path = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=suffix, dir=directory.parent))
    path.chmod(0o777 & ~user_umask())
    return path


def user_umask() -> int:
    """The process's umask (read by setting and restoring it), for files made by ``tempfile`` (mode 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _clear(directory: Path) -> None:
    """Delete everything inside a nasvit run directory (the directory itself stays)."""
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
