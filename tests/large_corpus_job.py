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


WORDS = [f"w{i:03d}".rjust(40, "x") for i in range(400)]


def word_tokenizer():
    """A tokenizer with one piece per word of the corpus: a learned one takes a minute to tokenise 256 MB on two
    cores, this one seconds; what streams is the same."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["<s>", "<pad>", "</s>", "<unk>", *WORDS, "<mask>"])}
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

    from hf_minimodel import load_text_dataset, train_target_embeddings

    model = XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=500, hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=2, intermediate_size=64,
                                                   max_position_embeddings=80))
    peak, running = [0.0], True

    def watch():
        while running:
            peak[0] = max(peak[0], anonymous_mb())
            time.sleep(0.02)

    start = anonymous_mb()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    began = time.perf_counter()
    texts = load_text_dataset(corpus)
    tokenizer = word_tokenizer()
    pack = train_target_embeddings(model, tokenizer, texts, output_dir, max_steps=2, batch_size=4,
                                   max_seq_length=64, init="random")
    running = False
    watcher.join()
    print(json.dumps({"rows": len(texts), "tokens": pack.metadata["train_tokens"], "start_mb": round(start, 1),
                      "peak_mb": round(peak[0], 1), "seconds": round(time.perf_counter() - began, 1)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
