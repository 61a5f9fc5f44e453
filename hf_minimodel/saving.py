"""Atomic folder writes: a saved artifact is either complete or absent, never half-written.

Steps 2 and 4 end by writing a folder (a language pack, a merged model) that later steps and users load by path.
An interrupted save (Ctrl-C, a full disk, a crash in a tokenizer's `save_pretrained`) must not leave a folder that
looks like an artifact but is not one, and must not destroy the earlier artifact before the new one is complete.
"""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .checks import InputError, fix
from .version import __version__

# The file that marks a folder as one hf-minimodel wrote (`atomic_directory` puts it in every folder it writes):
# overwriting replaces such a folder only, never a folder of the user's that happens to have the output's name.
MARKER_NAME = ".hf-minimodel"


class OutputExistsError(FileExistsError):
    """The output folder exists and the caller did not ask to overwrite it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        super().__init__(
            f"output folder {self.path} already exists: {fix('pass overwrite=True', 'pass --overwrite')} or choose another folder"
        )


class OutputNotOursError(OutputExistsError):
    """The output exists and is not something hf-minimodel wrote: overwriting would destroy the user's own files."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        FileExistsError.__init__(
            self, f"{self.path} exists and was not written by hf-minimodel (it has no {MARKER_NAME} file): "
                  f"{fix('overwrite=True', '--overwrite')} replaces only what hf-minimodel wrote; choose another output, "
                  "or remove it yourself if it can go"
        )


class OutputBusyError(FileExistsError):
    """Another run is writing the same output right now."""


class OutputPathError(OSError):
    """The output cannot be created where the caller asked (a file in the way, no permission, a read-only disk).
    Made from the `OSError` that said so, it keeps its errno (a full disk and a missing permission stay told apart)."""

    def __init__(self, message: str, cause: OSError | None = None):
        super().__init__(*((cause.errno, cause.strerror) if cause is not None and cause.errno else (message,)))
        self.message = message

    def __str__(self) -> str:
        return self.message


def _cannot_write(path: Path, error: OSError) -> OutputPathError:
    return OutputPathError(f"cannot write {path} ({error.strerror or error}): choose a folder you can write to", error)


def _sibling(path: Path, tag: str) -> Path:
    # Hidden and beside `path`: the same filesystem, so os.replace is an atomic rename, and tools that list the
    # parent folder (or the Hub's upload_folder of it) skip it. The process id tells a later run whose it was.
    return path.parent / f".{path.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


# The hidden siblings this process is writing right now: its own process id does not tell them from those of an
# earlier process that had the same id (in a container the main process is often process 1 on every run).
_IN_PROGRESS: set[Path] = set()


def user_path(path: str | os.PathLike) -> Path:
    """`path` as the user named it: a temporary or set-aside sibling on it (`.NAME.tmp-PID-*`, `.NAME.old-PID-*`)
    is given as NAME, so that an error met while saving names the output, not our hidden folder."""
    return Path(*(re.sub(r"^\.(.+)\.(?:tmp|old)-\d+-[0-9a-f]+$", r"\1", part) for part in Path(path).parts))


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


# The JSON files the commands write (`minimodel evaluate`'s rows, `minimodel inits`' reports), by the keys that every
# entry of theirs has: a results file carries no marker of its own.
RESULT_KEYS = ({"method", "num_examples"}, {"init", "rows"})


def written_by_us(path: str | os.PathLike) -> bool:
    """Whether `path` is something hf-minimodel wrote, which overwriting may replace: a folder holding the marker
    file (`MARKER_NAME`), or a results file of a command (a JSON list of entries with one of `RESULT_KEYS`)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        return (path / MARKER_NAME).is_file()
    if not path.is_file() or path.is_symlink() or path.stat().st_size > 2**24:
        return False
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
        return False
    return any(all(keys <= row.keys() for row in rows) for keys in RESULT_KEYS)


def check_not_an_input(path: str | os.PathLike, inputs: Sequence) -> None:
    """Raise `InputError` if the output `path` is one of `inputs`, inside one or above one (links followed):
    writing it would change or delete what the same run reads. Inputs that are not on this machine (Hub ids) and
    `None`s are skipped."""
    output = Path(path).expanduser().resolve()
    for source in inputs:
        if source is None:
            continue
        given = Path(os.fspath(source)).expanduser()
        if not (given.exists() or given.is_symlink()):
            continue
        resolved = given.resolve()
        if output == resolved:
            relation = "is the input"
        elif resolved in output.parents:
            relation = "is inside the input"
        elif output in resolved.parents:
            relation = "holds the input"
        else:
            continue
        raise InputError(f"the output {path} {relation} {os.fspath(source)}: writing it would change what this run reads; "
                         "choose an output apart from every input")


def check_output(path: str | os.PathLike, overwrite: bool = False, inputs: Sequence = ()) -> None:
    """Raise before any work if `path` cannot become an output (folder or file): it is one of `inputs`, inside one
    or above one (`check_not_an_input`); it exists and `overwrite` is false, or it exists and hf-minimodel did not
    write it (`written_by_us`); something on the way to it is a file, or its nearest existing folder cannot be
    written to.

    Commands that train first and save at the end call this first, so an hour of training never ends in "file
    exists" or "permission denied". The messages name `path` as the user wrote it, never a temporary name.
    """
    path = Path(path)
    check_not_an_input(path, inputs)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputExistsError(path)
        if not written_by_us(path):
            raise OutputNotOursError(path)
    missing = _missing_parents(path)
    nearest = missing[-1].parent if missing else path.parent
    if not nearest.is_dir():
        raise OutputPathError(f"cannot create {path}: {nearest} is a file, not a folder: choose another output path")
    try:
        # os.access says yes to root even where nothing can be created (/proc, read-only mounts): try it.
        os.rmdir(tempfile.mkdtemp(prefix=f".{path.name}.probe-", dir=nearest))
    except OSError as error:
        raise _cannot_write(path, error) from None


@contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes `path`, on an exception it is deleted.

    ```python
    with atomic_directory("my-pack") as folder:
        tokenizer.save_pretrained(folder)
        ...
    ```

    With `overwrite`, an existing `path` that hf-minimodel wrote (`written_by_us`) is renamed aside, the new folder
    renamed into place, and only then the old one deleted; one it did not write raises `OutputNotOursError`. Without
    it, an existing `path` raises `OutputExistsError` before the body runs. The folder gets a marker file
    (`MARKER_NAME`) that tells later overwrites it is ours. Missing parent
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
        raise _cannot_write(path, error) from None
    old = _sibling(path, "old")
    _IN_PROGRESS.update((temporary, old))
    try:
        try:
            yield temporary
        except BaseException:
            _remove(temporary)
            _remove_empty(created)
            raise
        # Marked last, so that only a folder whose body finished is one that a later overwrite may replace.
        (temporary / MARKER_NAME).write_text(json.dumps({"written_by": f"hf-minimodel {__version__}"}) + "\n")
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


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden temporary name beside `path`; what the body wrote there becomes `path` in one rename, and on
    an exception it is removed: `path` is whole or as it was, never half-written. What a killed write leaves is the
    same hidden sibling as `atomic_directory`'s, which `recover(path)` (called here first) removes."""
    path = Path(path)
    recover(path)
    temporary = _sibling(path, "tmp")
    _IN_PROGRESS.add(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        _IN_PROGRESS.discard(temporary)
        _remove(temporary)  # gone already after the rename; left by an exception otherwise


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # nearest first, so each is empty once the one below it is gone
        try:
            folder.rmdir()
        except OSError:
            break  # not empty (someone else wrote there meanwhile) or already gone: leave the rest


LOG_NAME = "training_log.jsonl"


def save_trained(path: str | os.PathLike, model, tokenizer=None, *, report=None, records: dict | None = None,
                 overwrite: bool = False, model_folder: str = "", tokenizer_folder: str = "") -> Path:
    """What a step trained, saved whole or not at all (`atomic_directory`): `model` (safetensors), its `tokenizer`,
    the Trainer's log of `report` (a `TrainingReport`) as training_log.jsonl (`write_training_log`), and `records`,
    JSON files by name (`{"step1.json": {...}}`). `model_folder` and `tokenizer_folder` put the model and the
    tokenizer in folders of their own inside `path` (the demo's cache keeps them so)."""
    with atomic_directory(path, overwrite=overwrite) as folder:
        model.save_pretrained(folder / model_folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder / tokenizer_folder)
        if report is not None:
            write_training_log(folder, report.log_history)
        for name, value in (records or {}).items():
            (folder / name).write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    return Path(path)


def write_training_log(folder: str | os.PathLike, history: list) -> None:
    """The Trainer's log entries (loss, learning rate, throughput) as JSON lines in `folder`/training_log.jsonl: what
    the console no longer shows (`progress.TrainingProgress`)."""
    (Path(folder) / LOG_NAME).write_text("".join(json.dumps(entry) + "\n" for entry in history), encoding="utf-8")


@contextmanager
def scratch_folder(path: str | os.PathLike) -> Iterator[Path]:
    """`path` for a tool that may or may not write there (the Trainer and its checkpoints, which are only kept
    with `save_steps`): afterwards, success or not, it is removed again if this call created it and it is empty.
    Only the first process of a multi-process run counts it as its own: every rank may find it missing, and a rank
    that ended first would otherwise remove it while the first one (the Trainer's only writer) still writes there."""
    path = Path(path)
    created = [path, *_missing_parents(path)] if is_main_process() and not path.exists() else []
    try:
        yield path
    finally:
        _remove_empty(created)


@contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[None]:
    """Held while a run writes `path` (and its checkpoints beside it): a second run into the same output refuses at
    once with `OutputBusyError`, instead of training beside the first, sharing its checkpoints, and failing at the
    end. The lock is a file `.NAME.lock` beside `path`, locked with `flock`, so a run that dies (even by SIGKILL)
    releases it; it is removed when the run ends, with any parent folders made for it that stayed empty. Only the
    first process of a multi-process run takes it (the others write nothing). Where `flock` does not exist
    (Windows), nothing is locked."""
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if fcntl is None or not is_main_process():
        yield
        return
    path = Path(path)
    created = _missing_parents(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _cannot_write(path, error) from None
    lock = path.parent / f".{path.name}.lock"
    held = None
    try:
        while held is None:
            handle = open(lock, "a+")  # noqa: SIM115 - held until the run ends
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                raise OutputBusyError(
                    f"another run{f' (process {holder})' if holder.isdigit() else ''} is writing {path}: wait for it to "
                    "end, or choose another output"
                ) from None
            if lock.exists() and os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino:
                held = handle
            else:
                handle.close()  # the run before us removed the file between our open and our lock: lock the new one
        handle = held
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        if held is not None:
            lock.unlink(missing_ok=True)  # before closing, which releases the lock: no one locks a file on its way out
            held.close()
        _remove_empty(created)


__all__ = ["MARKER_NAME", "OutputBusyError", "OutputExistsError", "OutputNotOursError", "OutputPathError", "atomic_directory",
           "check_not_an_input", "check_output", "is_main_process", "output_lock", "recover", "save_trained", "scratch_folder",
           "user_path", "write_training_log", "written_by_us"]
