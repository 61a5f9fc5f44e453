"""A corpus of one 5 MB line packed into blocks, in a process of its own (tests/test_corpus.py).

    python tests/long_line_job.py CORPUS

Writes the line (about 1.7 million two-letter words), reads it with `load_text_dataset` and packs it with
`mlm_blocks`, watching the process's anonymous resident memory (its heap) every 10 ms. Prints one JSON line: the
blocks, and how much the heap grew.
"""

import json
import random
import sys
from pathlib import Path

# Run as a script (`python tests/long_line_job.py`), which puts its own folder first on the import path.
from large_corpus_job import HeapWatch, word_tokenizer

# One piece per two-letter word: many tokens per megabyte, as a real tokenizer gives on real text.
WORDS = [f"{letter}{digit}" for letter in "abcdefghijklmnopqrstuvwxyz" for digit in range(10)]


def main(corpus: str) -> None:
    rng = random.Random(0)
    Path(corpus).write_text(" ".join(rng.choices(WORDS, k=5 * 2**20 // 3)) + "\n")
    from hf_minimodel import load_text_dataset
    from hf_minimodel.blocks import mlm_blocks

    tokenizer = word_tokenizer(WORDS)
    with HeapWatch(interval=0.01) as heap:
        blocks = mlm_blocks(load_text_dataset(corpus), tokenizer, 128)
    print(json.dumps({"blocks": len(blocks), "grew_mb": round(heap.peak - heap.start, 1)}))


if __name__ == "__main__":
    main(sys.argv[1])
