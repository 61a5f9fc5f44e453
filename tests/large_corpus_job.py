"""Step 2 on a corpus far larger than the memory it may use, in a process of its own (tests/test_corpus.py).

    python tests/large_corpus_job.py CORPUS MEGABYTES OUTPUT_DIR

Writes a text file of MEGABYTES, then runs step 2 from it (two steps, a tiny model: reading, tokenising and packing
the whole corpus is what is measured), watching the process's anonymous resident memory (`RssAnon`: its heap, what reading a corpus into memory
would fill) every 20 ms. Memory-mapped files are left out on purpose: the Arrow cache the corpus streams into is
mapped, and the kernel drops those pages whenever it needs the room. Prints one JSON line.
"""

import json
import random
import sys
import threading
import time


def anonymous_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


class HeapWatch:
    """The heap's start and peak (`anonymous_mb`) while the `with` block runs, read by a thread every `interval` s."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.running = interval, True

    def __enter__(self):
        self.start = self.peak = anonymous_mb()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while self.running:
            self.peak = max(self.peak, anonymous_mb())
            time.sleep(self.interval)

    def __exit__(self, *exception):
        self.running = False
        self.thread.join()


WORDS = [f"w{i:03d}".rjust(40, "x") for i in range(400)]


def word_tokenizer(words=WORDS):
    """A tokenizer with one piece per word of the corpus: a learned one takes a minute to tokenise 256 MB on two
    cores, this one seconds; what streams is the same."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["<s>", "<pad>", "</s>", "<unk>", *words, "<mask>"])}
    pipeline = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    pipeline.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    pipeline.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=pipeline, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>")


def write_corpus(path: str, megabytes: int) -> None:
    # Long lines of long words: a corpus of this size in bytes that tokenises in seconds.
    rng = random.Random(0)
    words = WORDS
    chunk = ("\n".join(" ".join(rng.choices(words, k=100)) for _ in range(256)) + "\n").encode()
    with open(path, "wb") as handle:
        for _ in range(megabytes * 2**20 // len(chunk) + 1):
            handle.write(chunk)


def main(corpus: str, megabytes: int, output_dir: str) -> None:
    write_corpus(corpus, megabytes)
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    from hf_minimodel import load_text_dataset
    from hf_minimodel.target_embeddings import train_target_embeddings

    model = XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=500, hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=2, intermediate_size=64,
                                                   max_position_embeddings=80))
    began = time.perf_counter()
    with HeapWatch() as heap:
        texts = load_text_dataset(corpus)
        tokenizer = word_tokenizer()
        pack = train_target_embeddings(model, tokenizer, texts, output_dir, max_steps=2, batch_size=4,
                                       max_seq_length=64, init="random")
    print(json.dumps({"rows": len(texts), "tokens": pack.metadata["train_tokens"], "start_mb": round(heap.start, 1),
                      "peak_mb": round(heap.peak, 1), "seconds": round(time.perf_counter() - began, 1)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
