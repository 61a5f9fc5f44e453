import datasets
import pytest

from hf_minimodel import corpus
from hf_minimodel.corpus import CorpusError, load_text_dataset, read_text_files


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_one_example_per_non_empty_line_stripped(tmp_path):
    path = write(tmp_path / "a.txt", "\ufefffirst line \n\n   \n\tsecond line\r\nthird")
    assert read_text_files(path) == ["first line", "second line", "third"]


def test_folder_reads_its_txt_files_in_name_order(tmp_path):
    write(tmp_path / "b.txt", "from b")
    write(tmp_path / "a.txt", "from a")
    write(tmp_path / "notes.md", "not a corpus file")
    assert read_text_files(tmp_path) == ["from a", "from b"]


def test_list_of_files_keeps_the_given_order(tmp_path):
    a, b = write(tmp_path / "a.txt", "from a"), write(tmp_path / "b.txt", "from b")
    assert read_text_files([b, str(a)]) == ["from b", "from a"]


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(CorpusError, match="not found.*missing.txt"):
        read_text_files(tmp_path / "missing.txt")


def test_non_utf8_file_says_where_and_how_to_fix(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("bonjour\nça va\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin1.txt is not UTF-8.*line 2.*re-encode it as UTF-8"):
        read_text_files(path)


def test_corpus_with_only_empty_lines_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="no text in"):
        read_text_files(write(tmp_path / "empty.txt", "\n  \n"))


def test_folder_without_txt_files_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="has no .txt files"):
        read_text_files(tmp_path)


def test_corpus_error_is_a_value_error():
    assert issubclass(CorpusError, ValueError)


def test_text_file_becomes_a_dataset_with_a_text_column(tmp_path):
    dataset = load_text_dataset(write(tmp_path / "a.txt", "one\ntwo\n"))
    assert isinstance(dataset, datasets.Dataset)
    assert dataset.column_names == ["text"]
    assert dataset["text"][:] == ["one", "two"]


def test_saved_dataset_column_is_renamed_to_text(tmp_path):
    datasets.Dataset.from_dict({"content": ["a", "b"], "text": ["x", "y"], "id": [1, 2]}).save_to_disk(tmp_path / "ds")
    dataset = load_text_dataset(tmp_path / "ds", text_column="content")
    assert dataset.column_names == ["text"]  # other columns are dropped
    assert dataset["text"][:] == ["a", "b"]


def test_saved_dataset_dict_gives_the_requested_split(tmp_path):
    splits = {name: datasets.Dataset.from_dict({"text": [name]}) for name in ("train", "validation")}
    datasets.DatasetDict(splits).save_to_disk(tmp_path / "dd")
    assert load_text_dataset(tmp_path / "dd", split="validation")["text"][:] == ["validation"]


def test_missing_split_lists_the_splits(tmp_path):
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a"]})}).save_to_disk(tmp_path / "dd")
    with pytest.raises(CorpusError, match="no split 'test'.*train"):
        load_text_dataset(tmp_path / "dd", split="test")


def test_missing_text_column_lists_the_columns(tmp_path):
    datasets.Dataset.from_dict({"sentence": ["a"], "label": [0]}).save_to_disk(tmp_path / "ds")
    with pytest.raises(CorpusError, match="no column 'text'.*sentence, label"):
        load_text_dataset(tmp_path / "ds")


def test_mistyped_local_path_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus.datasets, "load_dataset", lambda *a, **k: pytest.fail("tried the Hub"))
    with pytest.raises(CorpusError, match="not found"):
        load_text_dataset(str(tmp_path / "typo.txt"))


def test_hub_failure_suggests_a_local_path(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(corpus.datasets, "load_dataset", offline)
    with pytest.raises(CorpusError, match="could not load dataset 'someone/corpus'.*offline\\? pass a local path"):
        load_text_dataset("someone/corpus")


@pytest.mark.parametrize("streaming", [False, True])
def test_hub_dataset_with_a_config_keeps_only_its_text(monkeypatch, streaming):
    asked = {}

    def hub(name, config, split, streaming):
        asked.update(name=name, config=config, split=split, streaming=streaming)
        rows = datasets.Dataset.from_dict({"id": ["1"], "url": ["u"], "title": ["t"], "body": ["Habari ya asubuhi"]})
        return rows.to_iterable_dataset() if streaming else rows

    monkeypatch.setattr(corpus.datasets, "load_dataset", hub)
    dataset = load_text_dataset("wikimedia/wikipedia", config="20231101.sw", text_column="body", streaming=streaming)
    assert asked == {"name": "wikimedia/wikipedia", "config": "20231101.sw", "split": "train", "streaming": streaming}
    assert [row for row in dataset] == [{"text": "Habari ya asubuhi"}]


def test_streaming_gives_an_iterable_dataset(tmp_path):
    dataset = load_text_dataset(write(tmp_path / "a.txt", "one\ntwo"), streaming=True)
    assert isinstance(dataset, datasets.IterableDataset)
    assert [row["text"] for row in dataset] == ["one", "two"]


# Corpora larger than memory: text files beyond corpus.IN_MEMORY_BYTES stream into datasets' Arrow cache.


@pytest.fixture
def streamed(monkeypatch, tmp_path):
    """Every text corpus takes the streamed path, with its own cache folder."""
    monkeypatch.setattr(corpus, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")


def test_streamed_files_give_the_lines_read_into_memory(tmp_path, streamed):
    import gzip

    write(tmp_path / "a.txt", "\ufefffirst line \n\n   \n\tsecond line\r\nthird")
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress("from gz\n\nlast\n".encode()))
    dataset = load_text_dataset(tmp_path)
    assert dataset.cache_files, "read into memory, not into the Arrow cache"
    assert dataset["text"][:] == read_text_files(tmp_path) == ["first line", "second line", "third", "from gz", "last"]


def test_a_streamed_file_that_changed_is_read_again(tmp_path, streamed):
    import os

    path = write(tmp_path / "a.txt", "one\ntwo\n")
    assert load_text_dataset(path)["text"][:] == ["one", "two"]
    write(path, "one\ntwo\nthree and more\n")  # a different size: a different cache entry
    assert load_text_dataset(path)["text"][:] == ["one", "two", "three and more"]
    before = path.stat()
    write(path, "uno\ndos\ntres and more!\n")  # the same size, and the modification time put back (cp -p, rsync -t)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    assert load_text_dataset(path)["text"][:] == ["uno", "dos", "tres and more!"]


def test_an_unreadable_streamed_file_is_an_os_error_not_a_bug(tmp_path, streamed, monkeypatch):
    def failing(path):
        raise OSError(5, "Input/output error", str(path))
        yield  # a generator, as the real reader

    monkeypatch.setattr(corpus, "_iter_lines", failing)
    with pytest.raises(OSError, match="Input/output error"):
        load_text_dataset(write(tmp_path / "a.txt", "one\n"))


def test_a_gzip_file_counts_at_its_text_size(tmp_path):
    import gzip

    (tmp_path / "big.txt.gz").write_bytes(gzip.compress(b"the same line\n" * 100_000))  # 1.4 MB of text in 5 kB
    assert corpus._text_size(tmp_path / "big.txt.gz") == 1_400_000


def test_streamed_file_errors_are_the_same_one_line_errors(tmp_path, streamed):
    path = tmp_path / "latin1.txt"
    path.write_bytes("bonjour\nça va\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin1.txt is not UTF-8.*line 2, byte offset 8.*re-encode it as UTF-8"):
        load_text_dataset(path)
    with pytest.raises(CorpusError, match="no text in .*empty.txt: every line is empty"):
        load_text_dataset(write(tmp_path / "empty.txt", "\n  \n"))
    (tmp_path / "broken.txt.gz").write_bytes(b"not gzip at all")
    with pytest.raises(CorpusError, match="broken.txt.gz is not a valid gzip file"):
        load_text_dataset(tmp_path / "broken.txt.gz")


def test_the_tokenizer_trains_from_a_dataset_read_in_batches(tmp_path):
    from hf_minimodel import train_target_tokenizer

    lines = [f"line {i} of words that repeat" for i in range(50)]
    from_dataset = train_target_tokenizer(load_text_dataset(write(tmp_path / "a.txt", "\n".join(lines))), vocab_size=60,
                                          show_progress=False)
    from_strings = train_target_tokenizer(lines, vocab_size=60, show_progress=False)
    assert from_dataset.get_vocab() == from_strings.get_vocab()


# Anonymous resident memory (heap, not the memory-mapped Arrow cache) may grow by at most this while step 2 reads,
# tokenises and packs a 256 MB corpus. Measured: 57 MB (the Trainer, batches, one map batch at a time); read into
# memory as before, the same corpus took 1,555 MB.
LARGE_CORPUS_MB, MEMORY_BOUND_MB = 256, 128


@pytest.mark.newest_only  # the same datasets and torch in both CI halves
def test_step2_reads_a_corpus_of_hundreds_of_megabytes_in_flat_memory(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    job = Path(__file__).with_name("large_corpus_job.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, str(job), str(tmp_path / "corpus.txt"), str(LARGE_CORPUS_MB), str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert (tmp_path / "corpus.txt").stat().st_size >= LARGE_CORPUS_MB * 2**20
    assert measured["rows"] > 60_000 and measured["tokens"] == 2 * 4 * 64
    assert measured["peak_mb"] - measured["start_mb"] < MEMORY_BOUND_MB, measured
    assert "Generating train split" in done.stderr and "Tokenizing and packing" in done.stderr  # progress while reading


def test_a_long_text_is_cut_into_pieces_at_spaces():
    from hf_minimodel.corpus import split_long_text

    text = " ".join(f"word{i}" for i in range(3000))  # about 26,000 characters
    pieces = list(split_long_text(text, limit=1000))
    assert all(900 < len(piece) <= 1000 for piece in pieces[:-1]) and len(pieces) == 26  # full pieces, cut at the last space
    assert " ".join(pieces).split() == text.split()  # cut between words, none lost or split
    assert list(split_long_text("short", limit=1000)) == ["short"]
    assert [len(piece) for piece in split_long_text("x" * 2500, limit=1000)] == [1000, 1000, 500]  # no space: cut anyway


def test_a_long_line_is_read_in_pieces_without_breaking_a_character_or_the_line_count(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "MAX_EXAMPLE_CHARS", 64)
    words = " ".join(f"слово{i}" for i in range(40))  # Cyrillic: two bytes a letter
    unbroken = "я" * 100  # 200 bytes and no space: cut between characters
    path = write(tmp_path / "long.txt", f"first line\n{words}\n{unbroken}\nlast\n")
    lines = read_text_files(path)
    assert lines[0] == "first line" and lines[-1] == "last"
    assert all(len(line.encode()) <= 64 for line in lines)
    middle = lines[1:-1]
    assert " ".join(middle).replace("я ", "я").count("я") == 100 and "".join(p for p in middle if "я" in p) == unbroken
    assert " ".join(p for p in middle if "я" not in p).split() == words.split()
    (tmp_path / "bad.txt").write_bytes(f"{words}\n{unbroken}\ncaf\xe9\n".encode("utf-8").replace(b"caf\xc3\xa9", b"caf\xe9"))
    with pytest.raises(CorpusError, match="at line 3"):  # the line count survives lines read in pieces
        read_text_files(tmp_path / "bad.txt")


def test_packing_in_chunks_gives_the_blocks_of_one_flat_stream(monkeypatch):
    """mlm_blocks tokenises a batch in chunks of characters and packs from a flat array: the blocks are exactly those
    of all the batch's tokens laid end to end (as before chunking), with what is left over at the end dropped."""
    from hf_minimodel import blocks
    from hf_minimodel.sample import read_sample
    from hf_minimodel.tokenizer import train_target_tokenizer

    texts = read_sample("en-kjv.train")[:120]
    tokenizer = train_target_tokenizer(texts, vocab_size=300, show_progress=False)
    stream = [t for text in texts for t in tokenizer(text)["input_ids"]]
    expected = [stream[i:i + 16] for i in range(0, len(stream) - 15, 16)]
    monkeypatch.setattr(blocks, "TOKENIZE_CHARS", 500)  # many chunks per batch
    packed = blocks.mlm_blocks(texts, tokenizer, 16)
    assert packed["input_ids"] == expected and packed["block"] == list(range(len(expected)))
    assert packed["attention_mask"] == [[1] * 16] * len(expected)


def test_a_long_text_given_as_a_string_is_packed_as_pieces_too():
    """Text from a list or a Hub dataset (not read from a file by lines) is cut as mlm_blocks reads it: each piece of
    at most MAX_EXAMPLE_CHARS characters is tokenised, and framed by <s> ... </s>, on its own."""
    from hf_minimodel.corpus import MAX_EXAMPLE_CHARS, split_long_text
    from hf_minimodel.sample import read_sample
    from hf_minimodel.tokenizer import train_target_tokenizer
    from hf_minimodel.blocks import mlm_blocks

    verses = read_sample("en-kjv.train")[:400]
    tokenizer = train_target_tokenizer(verses, vocab_size=300, show_progress=False)
    text = " ".join(verses)[: 3 * MAX_EXAMPLE_CHARS - 200]
    pieces = list(split_long_text(text))
    blocks = mlm_blocks([text], tokenizer, 16)
    starts = sum(block.count(tokenizer.bos_token_id) for block in blocks["input_ids"])
    assert len(pieces) == 3 and min(map(len, pieces)) > 3000 and starts == 3  # one <s> per piece


@pytest.mark.newest_only  # the same datasets and torch in both CI halves
def test_a_corpus_of_one_long_line_packs_in_bounded_memory(tmp_path):
    """One 5 MB line (1.7 million tokens) grew the heap by 867 MB while packing, when a line was one example and a
    batch's tokens Python ints; cut into pieces and packed from a flat array, by 117 MB."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    job = Path(__file__).with_name("long_line_job.py")
    done = subprocess.run([sys.executable, str(job), str(tmp_path / "line.txt")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["blocks"] > 13_000 and measured["grew_mb"] < 300, measured
