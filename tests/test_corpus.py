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
