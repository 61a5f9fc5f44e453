"""Training text for any language: local text files, a saved `datasets` folder, or a Hub dataset.

Whatever the source, the result has its text in a column named "text", so the steps that follow (training the
target tokenizer, then the embeddings) never need to know where the text came from.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import datasets

from . import hub
from .checks import InputError, fix

PathLike = str | os.PathLike

# Suffixes that make a missing source read as a mistyped path rather than a Hub dataset name.
_TEXT_SUFFIXES = (".txt", ".gz")

# Text files larger than this in all are read into datasets' Arrow cache on disk rather than into memory, where a
# line of text costs about three times its size as a Python string. Below it, reading into memory is faster and
# leaves no cache behind.
IN_MEMORY_BYTES = 64 * 2**20

# Examples longer than this many characters are cut into pieces of at most this size, at the last space before the
# limit where there is one, as they are read: each piece is then an example of its own. A corpus of one 5 MB line
# made tokenising hold a million tokens at once, as Python objects (1.37 GB for step 2); an example this long is a
# whole document anyway, and a piece still fills several blocks of 512 tokens.
MAX_EXAMPLE_CHARS = 4096


class CorpusError(InputError):
    """The training text cannot be read; the message says what is wrong and how to fix it."""


def _expand(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise CorpusError("no corpus files given: pass a text file, a list of files or a folder of .txt files")
    files = []
    for item in (Path(item).expanduser() for item in items):
        if item.is_dir():
            # .txt.gz too, so the compressed sample shipped in hf_minimodel/data reads like any other corpus.
            found = sorted([*item.glob("*.txt"), *item.glob("*.txt.gz")])
            if not found:
                raise CorpusError(f"folder {item} has no .txt files: put one example per line in .txt files there")
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            raise CorpusError(f"corpus file not found: {item}: check the path")
    return files


def split_long_text(text: str, limit: int = MAX_EXAMPLE_CHARS) -> Iterator[str]:
    """`text` in pieces of at most `limit` characters, cut at the last whitespace before each limit where there
    is one (`MAX_EXAMPLE_CHARS` says why); a text within the limit is its one piece."""
    while len(text) > limit:
        cut = max(text.rfind(" ", 0, limit + 1), text.rfind("\n", 0, limit + 1))
        cut = cut if cut > 0 else limit
        yield text[:cut]
        text = text[cut:].lstrip()
    if text:
        yield text


def _utf8_boundary(raw: bytes, end: int) -> int:
    """The last place at or before `end` where a UTF-8 character starts (not inside one's continuation bytes)."""
    cut = end
    while cut > 0 and cut < len(raw) and 0x80 <= raw[cut] < 0xC0:
        cut -= 1
    return cut or end


def _iter_lines(path: Path) -> Iterator[str]:
    """The non-empty lines of one file, stripped, read as a stream: a corpus larger than memory passes through, and
    a line longer than `MAX_EXAMPLE_CHARS` bytes comes as pieces of at most that size (cut at a space where there is
    one), so one line of gigabytes does not have to fit either."""
    opener = gzip.open if path.suffix == ".gz" else open
    number = offset = 0
    carry = b""  # the part of a long line read but not yet given out
    with opener(path, "rb") as handle:  # a file that cannot be opened is an OSError that says so
        try:
            while True:
                # split on b"\n" only: str.splitlines would also break lines at U+2028 inside a line
                raw = carry + handle.readline(MAX_EXAMPLE_CHARS - len(carry))
                carry = b""
                if not raw:
                    break
                whole = raw.endswith(b"\n") or len(raw) < MAX_EXAMPLE_CHARS  # else a piece of a longer line
                if not whole:
                    space = raw.rfind(b" ")
                    cut = space + 1 if space > 0 else _utf8_boundary(raw, len(raw) - 1)
                    raw, carry = raw[:cut], raw[cut:]
                if number == 0 and offset == 0:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is not text
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError as err:
                    raise CorpusError(
                        f"{path} is not UTF-8 text (byte 0x{raw[err.start]:02x} at line {number + 1}, byte offset "
                        f"{offset + err.start}): re-encode it as UTF-8, e.g. iconv -f latin1 -t utf-8"
                    ) from None
                offset += len(raw)
                number += whole
                if line:
                    yield line
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:  # not gzip, truncated, or corrupt inside
            raise CorpusError(f"{path} is not a valid gzip file ({err}): decompress or recreate it") from err


# Part of the cache key of streamed corpora: raise it when _iter_lines reads lines differently, as datasets keys a
# module function by its name, not its code, and an upgrade would otherwise reuse caches read the old way.
LINE_READER_VERSION = 2  # 2: long lines come in pieces (MAX_EXAMPLE_CHARS)


def _generate_examples(files: list[str], stamps: list[tuple[int, ...]], reader: int) -> Iterator[dict]:
    # `stamps` and `reader` only feed datasets' cache key, so that a changed file (or reader) is read again.
    for name in files:
        for line in _iter_lines(Path(name)):
            yield {"text": line}


def _text_size(path: Path) -> int:
    """A file's size as text: a .gz file's uncompressed size from its trailer (modulo 4 GiB, so never less than the
    compressed size), as 60 MB of gzip can hold 600 MB of text."""
    size = path.stat().st_size
    if path.suffix != ".gz" or size < 4:
        return size
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        return max(size, struct.unpack("<I", handle.read(4))[0])


def _stream_to_arrow(files: list[Path]) -> datasets.Dataset:
    """Text files read line by line into datasets' Arrow cache, which the result maps from disk: memory stays flat
    however large the corpus (datasets shows its progress while it reads)."""
    from datasets.exceptions import DatasetGenerationError

    # Size, modification and change times, and inode: a rewrite that keeps the size and puts the mtime back (cp -p,
    # rsync -t) still changes the ctime, which no one can set back.
    stamps = [(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) for st in (path.stat() for path in files)]
    try:
        return datasets.Dataset.from_generator(
            _generate_examples,
            gen_kwargs={"files": [str(path.resolve()) for path in files], "stamps": stamps, "reader": LINE_READER_VERSION},
            features=datasets.Features({"text": datasets.Value("string")}),
        )
    except DatasetGenerationError as err:
        # datasets wraps whatever the generator raised: our own message says how to fix it, and an OSError (a file
        # unreadable midway, a full disk) is the user's to fix too, not a bug of ours.
        if isinstance(err.__cause__, (CorpusError, OSError)):
            raise err.__cause__ from None
        raise
    except ValueError as err:
        if "corresponds to no data" not in str(err):  # datasets' words for a generator that yielded nothing
            raise
        raise CorpusError(_no_text(files)) from None


def read_text_files(paths: PathLike | Sequence[PathLike]) -> list[str]:
    """One example per non-empty line (stripped) of UTF-8 text files.

    `paths` is a file, a folder (all its *.txt and *.txt.gz files, in name order) or a list of either; files
    ending in .gz are decompressed.
    """
    files = _expand(paths)
    texts = [line for path in files for line in _iter_lines(path)]
    if not texts:
        raise CorpusError(_no_text(files))
    return texts


def _no_text(files: list[Path]) -> str:
    return f"no text in {', '.join(map(str, files))}: every line is empty; put one example per line"


def _is_saved_dataset(folder: Path) -> bool:
    # The marker files `Dataset.save_to_disk` and `DatasetDict.save_to_disk` write.
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def _from_disk(folder: Path, split: str) -> datasets.Dataset:
    loaded = datasets.load_from_disk(str(folder))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise CorpusError(f"{folder} has no split {split!r}: {fix('pass split=', 'pass --split with')} one of {', '.join(loaded)}")
        loaded = loaded[split]
    return loaded


def _from_hub(name: str, config: str | None, split: str, streaming: bool) -> datasets.Dataset | datasets.IterableDataset:
    return hub.load_dataset(name, config, split, streaming=streaming, error=CorpusError,
                            what=f"could not load dataset {name!r} from the Hugging Face Hub",
                            advice="offline? pass a local path instead: a .txt file, a folder of .txt files or a folder "
                                   "saved with Dataset.save_to_disk")


def _looks_local(source: PathLike) -> bool:
    text = os.fspath(source)
    return Path(text).expanduser().exists() or text.endswith(_TEXT_SUFFIXES) or text.startswith(("/", ".", "~"))


def _text_column(dataset, text_column: str, source: object):
    columns = dataset.column_names
    # A streamed Hub dataset may not know its columns before the first row; renaming then happens lazily.
    if columns is not None and text_column not in columns:
        raise CorpusError(
            f"dataset {source} has no column {text_column!r}: its columns are {', '.join(columns)}; "
            f"{fix('pass text_column=', 'pass --text-column with')} one of them"
        )
    if text_column != "text":
        if columns is not None and "text" in columns:
            # The caller named another column as the text: the old "text" column must make way for it.
            dataset = dataset.remove_columns("text")
        dataset = dataset.rename_column(text_column, "text")
    # Only the text travels on: other columns (ids, urls, titles) would have to be dropped by every consumer, and a
    # streamed dataset cannot always say which columns it has.
    return dataset.select_columns(["text"])


def load_text_dataset(
    source: PathLike | Sequence[PathLike],
    *,
    split: str = "train",
    text_column: str = "text",
    streaming: bool = False,
    config: str | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """The training text as a dataset whose text is in a column named "text".

    `source` is, in the order tried: a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`
    (`split` picks from a DatasetDict); a text file, a list of files or a folder of .txt files (one example per
    line, see `read_text_files`; `split` is ignored; files over `IN_MEMORY_BYTES` in all are read in a stream into
    datasets' Arrow cache, so a corpus larger than memory passes through); otherwise a dataset name on the Hugging Face Hub, loaded with
    `datasets.load_dataset` with `config` (e.g. `("wikimedia/wikipedia", config="20231101.sw")`). `text_column`
    names the column holding the text, which is renamed to "text"; other columns are dropped. With `streaming=True`
    the result is an `IterableDataset`.
    """
    single = isinstance(source, (str, os.PathLike))
    if single and _is_saved_dataset(Path(source).expanduser()):
        dataset = _from_disk(Path(source).expanduser(), split)
    elif not single or _looks_local(source):
        if text_column != "text":
            raise CorpusError(
                f"text files have a single column, 'text', not {text_column!r}: leave {fix('text_column', '--text-column')} out"
            )
        files = _expand(source)
        if sum(_text_size(path) for path in files) > IN_MEMORY_BYTES:
            dataset = _stream_to_arrow(files)
        else:
            dataset = datasets.Dataset.from_dict({"text": read_text_files(files)})
    else:
        dataset = _from_hub(os.fspath(source), config, split, streaming)
    dataset = _text_column(dataset, text_column, source)
    if streaming and isinstance(dataset, datasets.Dataset):
        dataset = dataset.to_iterable_dataset()
    return dataset
