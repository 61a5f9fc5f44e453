"""Atomic folder writes: a saved artifact is either complete or absent, never half-written.

Steps 2 and 4 end by writing a folder (a language pack, a merged model) that later steps and users load by path.
An interrupted save (Ctrl-C, a full disk, a crash in a tokenizer's `save_pretrained`) must not leave a folder that
looks like an artifact but is not one, and must not destroy the earlier artifact before the new one is complete.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputExistsError(FileExistsError):
    """The output folder exists and the caller did not ask to overwrite it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        super().__init__(
            f"output folder {self.path} already exists: pass overwrite=True (CLI: --overwrite) or choose another folder"
        )


class OutputPathError(OSError):
    """The output cannot be created where the caller asked (a file in the way, no permission, a read-only disk)."""


def _sibling(path: Path, tag: str) -> Path:
    # Hidden and beside `path`: the same filesystem, so os.replace is an atomic rename, and tools that list the
    # parent folder (or the Hub's upload_folder of it) skip it. The process id tells a later run whose it was.
    return path.parent / f".{path.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


# The hidden siblings this process is writing right now: its own process id does not tell them from those of an
# earlier process that had the same id (in a container the main process is often process 1 on every run).
_IN_PROGRESS: set[Path] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def recover(path: str | os.PathLike) -> None:
    """Undo what a killed save left beside `path` (SIGKILL, an out-of-memory kill: nothing could clean up).

    A save writes into a hidden `.NAME.tmp-PID-*` sibling and renames it into place; with overwrite it first moves
    the previous version aside as `.NAME.old-PID-*`. For siblings whose process is gone: a previous version whose
    replacement never arrived is put back (so `path` is loadable as it was), and everything else is removed.
    Siblings of live processes (a save under way) are left alone; a process on another machine sharing the folder
    looks dead here, so do not save one folder from two machines at once. `atomic_directory` calls this first, and
    `LanguagePack.from_pretrained` for a folder that is missing.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return
    for sibling in sorted(path.parent.glob(f"{glob.escape('.' + path.name)}.*-*-*")):
        tag, _, rest = sibling.name[len(path.name) + 2:].partition("-")
        pid = rest.split("-")[0]
        if tag not in ("tmp", "old") or not pid.isdigit() or sibling in _IN_PROGRESS:
            continue
        if int(pid) != os.getpid() and _alive(int(pid)):
            continue
        if tag == "old" and not (path.exists() or path.is_symlink()):
            os.replace(sibling, path)
        else:
            _remove(sibling)


def _wait_for_first_process(path: Path, timeout: float = 1800.0) -> None:
    """In a multi-process run, every process leaves a save only once the first one has written `path`: at a barrier
    when torch.distributed is up (every process saves the same things, as they run the same script), else (before
    the Trainer started it) by waiting for `path` to appear."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.barrier()
        return
    if is_main_process():
        return
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for the first process to write {path}: did it fail?")
        time.sleep(0.2)


def is_main_process() -> bool:
    """False in the other processes of a multi-process run (torchrun, accelerate launch: `RANK` > 0), which must
    not write what the first one writes."""
    return int(os.environ.get("RANK", "0")) == 0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _missing_parents(path: Path) -> list[Path]:
    """The folders above `path` that do not exist yet, nearest first."""
    missing = []
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            break
        missing.append(parent)
    return missing


def check_output(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise before any work if `path` cannot become an output (folder or file): it exists and `overwrite` is
    false, something on the way to it is a file, or its nearest existing folder cannot be written to.

    Commands that train first and save at the end call this first, so an hour of training never ends in "file
    exists" or "permission denied". The messages name `path` as the user wrote it, never a temporary name.
    """
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputExistsError(path)
    missing = _missing_parents(path)
    nearest = missing[-1].parent if missing else path.parent
    if not nearest.is_dir():
        raise OutputPathError(f"cannot create {path}: {nearest} is a file, not a folder: choose another output path")
    try:
        # os.access says yes to root even where nothing can be created (/proc, read-only mounts): try it.
        os.rmdir(tempfile.mkdtemp(prefix=f".{path.name}.probe-", dir=nearest))
    except OSError as error:
        raise OutputPathError(f"cannot write {path} ({error.strerror or error}): choose a folder you can write to") from None


@contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes `path`, on an exception it is deleted.

    ```python
    with atomic_directory("my-pack") as folder:
        tokenizer.save_pretrained(folder)
        ...
    ```

    With `overwrite`, an existing `path` is renamed aside, the new folder renamed into place, and only then the old
    one deleted. Without it, an existing `path` raises `OutputExistsError` before the body runs. Missing parent
    folders are created, and removed again if the body fails. A save killed outright (SIGKILL) leaves `path` as it
    was and a hidden sibling that the next save beside it removes (`recover`); killed in the instant between its
    two renames, it leaves the previous version moved aside, which `recover` (called by the next save, or by
    `LanguagePack.from_pretrained`) puts back. In a multi-process run only the first process writes
    (`is_main_process`); the others' bodies write into a folder that is dropped, and every process waits until the
    first one's `path` is in place.
    """
    path = Path(path)
    if not is_main_process():
        # Another process of this run (rank 0) writes `path`; this one's copy goes to a folder that is dropped, and
        # it waits for rank 0's, so that what it reads back next is there.
        with tempfile.TemporaryDirectory(prefix="hf-minimodel-rank-") as scratch:
            yield Path(scratch)
        _wait_for_first_process(path)
        return
    recover(path)
    check_output(path, overwrite)
    created = _missing_parents(path)
    temporary = _sibling(path, "tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.mkdir()  # mkdir, not tempfile.mkdtemp: the artifact gets the user's umask, not mode 0700
    except OSError as error:
        _remove_empty(created)
        raise OutputPathError(f"cannot write {path} ({error.strerror or error}): choose a folder you can write to") from None
    old = _sibling(path, "old")
    _IN_PROGRESS.update((temporary, old))
    try:
        try:
            yield temporary
        except BaseException:
            _remove(temporary)
            _remove_empty(created)
            raise
        moved_aside = False
        try:
            if path.exists() or path.is_symlink():
                if not overwrite:  # created by someone else while the body ran
                    raise OutputExistsError(path)
                os.replace(path, old)
                moved_aside = True
            os.replace(temporary, path)
        except BaseException:
            if moved_aside and not path.exists():
                os.replace(old, path)
            _remove(temporary)
            _remove_empty(created)
            raise
        if moved_aside:
            _remove(old)
    finally:
        _IN_PROGRESS.difference_update((temporary, old))
    _wait_for_first_process(path)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # nearest first, so each is empty once the one below it is gone
        try:
            folder.rmdir()
        except OSError:
            break  # not empty (someone else wrote there meanwhile) or already gone: leave the rest


@contextmanager
def scratch_folder(path: str | os.PathLike) -> Iterator[Path]:
    """`path` for a tool that may or may not write there (the Trainer and its checkpoints, which are only kept
    with `save_steps`): afterwards, success or not, it is removed again if this call created it and it is empty."""
    path = Path(path)
    created = [path, *_missing_parents(path)] if not path.exists() else []
    try:
        yield path
    finally:
        _remove_empty(created)


__all__ = ["OutputExistsError", "OutputPathError", "atomic_directory", "check_output", "is_main_process", "recover", "scratch_folder"]
