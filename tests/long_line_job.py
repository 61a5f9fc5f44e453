"""A corpus of one 5 MB line packed into blocks, in a process of its own (tests/test_corpus.py).

    python tests/long_line_job.py CORPUS

Writes the line (about 1.7 million short words), reads it with `load_text_dataset` and packs it with `mlm_blocks`,
watching the process's anonymous resident memory (its heap) every 10 ms. Prints one JSON line: the blocks, and how
much the heap grew.
"""

import json
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from large_corpus_job import anonymous_mb  # noqa: E402

WORDS = [f"{letter}{digit}" for letter in "abcdefghijklmnopqrstuvwxyz" for digit in range(10)]


def short_word_tokenizer():
    """One piece per two-letter word: many tokens per megabyte, as a real tokenizer gives on real text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["<s>", "<pad>", "</s>", "<unk>", *WORDS, "<mask>"])}
    pipeline = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    pipeline.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    pipeline.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=pipeline, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>")


def main(corpus: str) -> None:
    rng = random.Random(0)
    Path(corpus).write_text(" ".join(rng.choices(WORDS, k=5 * 2**20 // 3)) + "\n")
    from hf_minimodel import load_text_dataset
    from hf_minimodel.training import mlm_blocks

    tokenizer = short_word_tokenizer()
    peak, running = [0.0], True

    def watch():
        while running:
            peak[0] = max(peak[0], anonymous_mb())
            time.sleep(0.01)

    start = anonymous_mb()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    blocks = mlm_blocks(load_text_dataset(corpus), tokenizer, 128)
    running = False
    watcher.join()
    print(json.dumps({"blocks": len(blocks), "grew_mb": round(peak[0] - start, 1)}))


if __name__ == "__main__":
    main(sys.argv[1])
