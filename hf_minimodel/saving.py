"""Atomic folder writes: a saved artifact is either complete or absent, never half-written.

Steps 2 and 4 end by writing a folder (a language pack, a merged model) that later steps and users load by path.
An interrupted save (Ctrl-C, a full disk, a crash in a tokenizer's `save_pretrained`) must not leave a folder that
looks like an artifact but is not one, and must not destroy the earlier artifact before the new one is complete.
"""

from __future__ import annotations

import os
import secrets
import shutil
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


def _sibling(path: Path, tag: str) -> Path:
    # Hidden and beside `path`: the same filesystem, so os.replace is an atomic rename, and tools that list the
    # parent folder (or the Hub's upload_folder of it) skip it.
    return path.parent / f".{path.name}.{tag}-{secrets.token_hex(4)}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes `path`, on an exception it is deleted.

    ```python
    with atomic_directory("my-pack") as folder:
        tokenizer.save_pretrained(folder)
        ...
    ```

    With `overwrite`, an existing `path` is renamed aside, the new folder renamed into place, and only then the old
    one deleted. Without it, an existing `path` raises `OutputExistsError` before the body runs.
    """
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _sibling(path, "tmp")
    temporary.mkdir()  # mkdir, not tempfile.mkdtemp: the artifact gets the user's umask, not mode 0700
    try:
        yield temporary
    except BaseException:
        _remove(temporary)
        raise

    old = None
    try:
        if path.exists() or path.is_symlink():
            if not overwrite:  # created by someone else while the body ran
                raise OutputExistsError(path)
            old = _sibling(path, "old")
            os.replace(path, old)
        os.replace(temporary, path)
    except BaseException:
        if old is not None and not path.exists():
            os.replace(old, path)
        _remove(temporary)
        raise
    if old is not None:
        _remove(old)


__all__ = ["OutputExistsError", "atomic_directory"]
