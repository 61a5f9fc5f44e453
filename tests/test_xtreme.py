import json

import datasets
import pytest

from hf_minimodel import hub as hub_access
from hf_minimodel.checks import speaking_to_the_command_line

from hf_minimodel.tasks import xtreme
from hf_minimodel.tasks.xtreme import (
    PAWSX_LABELS,
    XNLI_LABELS,
    BenchmarkDataError,
    load_mlqa,
    load_pawsx,
    load_squad,
    load_xnli,
)

XNLI_ROWS = [
    {"premise": "Il pleut.", "hypothesis": "Le sol est mouillé.", "label": 0},
    {"premise": "Il pleut.", "hypothesis": "Il fait beau.", "label": "contradiction"},
    {"premise": "Il pleut.", "hypothesis": "Il fait froid.", "label": "Neutral"},
]
CONTEXT = "La tour Eiffel est à Paris, la capitale de la France."
MLQA_ROWS = [
    {
        "id": "q1",
        "context": CONTEXT,
        "question": "Où est la tour Eiffel ?",
        "answers": {"text": ["Paris"], "answer_start": [CONTEXT.index("Paris")]},
    },
    {
        "id": "q2",
        "context": CONTEXT,
        "question": "De quel pays Paris est-elle la capitale ?",
        "answers": {
            "text": ["la France", "France"],
            "answer_start": [CONTEXT.index("la France"), CONTEXT.index("France")],
        },
    },
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def write_tsv(path, header, rows):
    path.write_text("\n".join("\t".join(map(str, line)) for line in [header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def hub(monkeypatch):
    """Stands in for datasets.load_dataset: records each request and answers with the dataset given for it."""
    calls, answers = [], {}

    def load_dataset(path, name=None, *, split=None, **kwargs):
        calls.append((path, name, split))
        return answers[path]

    monkeypatch.setattr(xtreme.datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(hub_access, "unreachable", lambda name, repo_type: None)  # this stand-in Hub answers
    return calls, answers


def test_an_unreachable_hub_is_said_at_once_without_asking_datasets(monkeypatch, tmp_path):
    """Offline, datasets retries for half a minute before failing; the probe answers in a second."""
    calls = []

    def load_dataset(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("no network")

    monkeypatch.setattr(xtreme.datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(xtreme.datasets.config, "HF_DATASETS_CACHE", str(tmp_path))  # no copy kept here
    monkeypatch.setattr(hub_access, "unreachable", lambda name, repo_type: "ConnectError: Name or service not known")
    from hf_minimodel import InputError

    with pytest.raises(InputError, match="Hugging Face Hub cannot be reached.*pass source= a local .jsonl"):
        load_xnli("sw", split="test")  # the user's to fix, so the CLI tells it in one line (an InputError)
    with speaking_to_the_command_line(), pytest.raises(xtreme.BenchmarkDataError, match="pass --test-file with a local .jsonl"):
        load_xnli("sw", split="test")  # the same advice, in the command line's terms
    assert calls == []
    (tmp_path / "facebook___xnli").mkdir()  # a kept copy: datasets is asked, and loads it offline
    with pytest.raises(xtreme.BenchmarkDataError, match="could not load"):
        load_xnli("sw", split="test")
    assert calls == [("facebook/xnli", "sw")]


def test_xnli_jsonl_gets_the_standard_columns_and_label_names(tmp_path):
    dataset = load_xnli("fr", source=write_jsonl(tmp_path / "xnli.jsonl", XNLI_ROWS))
    assert dataset.column_names == ["text_a", "text_b", "label"]
    assert dataset.features["label"].names == list(XNLI_LABELS) == ["entailment", "neutral", "contradiction"]
    assert dataset["text_b"][:] == ["Le sol est mouillé.", "Il fait beau.", "Il fait froid."]
    # Label names, in any case, become the task's ids.
    assert dataset["label"][:] == [0, 2, 1]


def test_xnli_tsv_with_quotes_in_the_text(tmp_path):
    rows = [['Il a dit "oui".', "Il a accepté.", "entailment"], ['Un "test', "Rien.", "2"]]
    dataset = load_xnli("fr", source=write_tsv(tmp_path / "xnli.tsv", ["premise", "hypothesis", "label"], rows))
    assert dataset["text_a"][:] == ['Il a dit "oui".', 'Un "test']
    assert dataset["label"][:] == [0, 2]


def test_pawsx_saved_dataset_dict_gives_the_requested_split(tmp_path):
    def split(label):
        return datasets.Dataset.from_dict(
            {"id": [1], "sentence1": ["Ein Satz."], "sentence2": ["Ein anderer Satz."], "label": [label]}
        )

    datasets.DatasetDict({"test": split(1), "validation": split(0)}).save_to_disk(tmp_path / "pawsx")
    dataset = load_pawsx("de", split="validation", source=tmp_path / "pawsx")
    assert dataset.column_names == ["text_a", "text_b", "label"]
    assert dataset.features["label"].names == list(PAWSX_LABELS) == ["not_paraphrase", "paraphrase"]
    assert dataset["label"][:] == [0]


def test_pawsx_tsv_in_the_original_release_layout(tmp_path):
    header = ["id", "sentence1", "sentence2", "label"]
    path = write_tsv(tmp_path / "test_2k.tsv", header, [[1, "A.", "B.", 1], [2, "C.", "D.", 0]])
    assert load_pawsx("de", source=path)["label"][:] == [1, 0]


def test_class_labels_of_a_saved_dataset_are_mapped_by_name(tmp_path):
    # A copy whose ClassLabel orders the names differently must keep each example's meaning.
    features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["contradiction", "entailment", "neutral"]),
        }
    )
    data = {"premise": ["p", "p", "p"], "hypothesis": ["c", "e", "n"], "label": [0, 1, 2]}
    datasets.Dataset.from_dict(data, features=features).save_to_disk(tmp_path / "xnli")
    dataset = load_xnli("fr", source=tmp_path / "xnli")
    assert [XNLI_LABELS[label] for label in dataset["label"][:]] == ["contradiction", "entailment", "neutral"]


def test_unknown_label_is_an_error_listing_the_labels(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"premise": "p", "hypothesis": "h", "label": "maybe"}])
    with pytest.raises(BenchmarkDataError, match="label 'maybe' .* one of entailment, neutral, contradiction"):
        load_xnli("fr", source=path)
    path = write_jsonl(tmp_path / "y.jsonl", [{"premise": "p", "hypothesis": "h", "label": 3}])
    with pytest.raises(BenchmarkDataError, match="label 3 .* use 0 to 2"):
        load_xnli("fr", source=path)


def test_missing_column_names_the_missing_and_present_columns(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"sentence1": "p", "sentence2": "h", "label": 0}])
    with pytest.raises(ValueError, match="no column premise, hypothesis: its columns are sentence1, sentence2, label"):
        load_xnli("fr", source=path)
    no_question = {"id": ["q"], "context": ["c"], "answers": [{"text": [], "answer_start": []}]}
    datasets.Dataset.from_dict(no_question).save_to_disk(tmp_path / "qa")
    with pytest.raises(ValueError, match="no column question: its columns are id, context, answers"):
        load_mlqa("de", source=tmp_path / "qa")


def test_missing_file_and_unsupported_format_say_what_to_pass(tmp_path):
    with pytest.raises(BenchmarkDataError, match="not found"):
        load_xnli("fr", source=tmp_path / "missing.jsonl")
    (tmp_path / "x.csv").write_text("premise,hypothesis,label\n", encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match=r"not a \.jsonl or \.json or \.tsv file"):
        load_xnli("fr", source=tmp_path / "x.csv")
    with pytest.raises(BenchmarkDataError, match="not a .jsonl or .json file"):
        load_mlqa("de", source=write_tsv(tmp_path / "qa.tsv", ["id"], [["q"]]))


def test_mlqa_jsonl_gets_squads_layout_with_an_empty_title(tmp_path):
    dataset = load_mlqa("fr", source=write_jsonl(tmp_path / "mlqa.jsonl", MLQA_ROWS))
    assert dataset.column_names == ["id", "title", "context", "question", "answers"]
    assert dataset.features == xtreme.QA_FEATURES
    assert dataset[1]["answers"] == MLQA_ROWS[1]["answers"]
    assert dataset["title"][:] == ["", ""]


def test_mlqa_official_squad_format_json(tmp_path):
    # MLQA's and SQuAD's own files: articles > paragraphs > questions, answers as a list of objects.
    data = {
        "version": "1.0",
        "data": [
            {
                "title": "Tour Eiffel",
                "paragraphs": [
                    {
                        "context": CONTEXT,
                        "qas": [
                            {
                                "id": "q1",
                                "question": "Où ?",
                                "answers": [{"text": "Paris", "answer_start": CONTEXT.index("Paris")}],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "test-context-fr-question-fr.json").write_text(json.dumps(data), encoding="utf-8")
    dataset = load_mlqa("fr", source=tmp_path / "test-context-fr-question-fr.json")
    assert dataset[0] == {
        "id": "q1",
        "title": "Tour Eiffel",
        "context": CONTEXT,
        "question": "Où ?",
        "answers": {"text": ["Paris"], "answer_start": [CONTEXT.index("Paris")]},
    }


def test_squad_saved_folder(tmp_path):
    rows = [{**row, "title": "Paris"} for row in MLQA_ROWS]
    datasets.Dataset.from_list(rows).save_to_disk(tmp_path / "squad")
    dataset = load_squad(source=tmp_path / "squad")
    assert dataset["id"][:] == ["q1", "q2"]
    assert dataset["title"][:] == ["Paris", "Paris"]


def test_xnli_from_the_hub_asks_for_the_language_config(hub):
    calls, answers = hub
    features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(XNLI_LABELS)),
        }
    )
    answers["facebook/xnli"] = datasets.Dataset.from_dict(
        {"premise": ["p"], "hypothesis": ["h"], "label": [2]}, features=features
    )
    dataset = load_xnli("sw", split="validation")
    assert calls == [("facebook/xnli", "sw", "validation")]
    assert dataset[0] == {"text_a": "p", "text_b": "h", "label": 2}


def test_pawsx_from_the_hub_maps_its_0_1_label_names(hub):
    calls, answers = hub
    features = datasets.Features(
        {
            "id": datasets.Value("int32"),
            "sentence1": datasets.Value("string"),
            "sentence2": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["0", "1"]),
        }
    )
    data = {"id": [1, 2], "sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [1, 0]}
    answers["google-research-datasets/paws-x"] = datasets.Dataset.from_dict(data, features=features)
    dataset = load_pawsx("ko")
    assert calls == [("google-research-datasets/paws-x", "ko", "test")]
    assert dataset["label"][:] == [1, 0]
    assert dataset.features["label"].names == ["not_paraphrase", "paraphrase"]


def test_mlqa_and_squad_from_the_hub_ask_for_the_right_configs(hub):
    calls, answers = hub
    answers["facebook/mlqa"] = datasets.Dataset.from_list(MLQA_ROWS)
    answers["rajpurkar/squad"] = datasets.Dataset.from_list([{**row, "title": "t"} for row in MLQA_ROWS])
    assert load_mlqa("de")["title"][:] == ["", ""]
    load_mlqa("de", "en", split="validation")
    assert load_squad()["title"][:] == ["t", "t"]
    assert calls == [
        ("facebook/mlqa", "mlqa.de.de", "test"),
        ("facebook/mlqa", "mlqa.de.en", "validation"),
        ("rajpurkar/squad", None, "train"),
    ]


def test_hub_failure_says_to_pass_a_local_source(monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'facebook/xnli' on the Hub (LocalEntryNotFoundError)\nmore details")

    monkeypatch.setattr(xtreme.datasets, "load_dataset", unreachable)
    monkeypatch.setattr(hub_access, "unreachable", lambda name, repo_type: None)  # the probe got through; loading failed
    with pytest.raises(BenchmarkDataError) as info:
        load_xnli("fr")
    message = str(info.value)
    assert "\n" not in message
    assert "could not load the Hub dataset 'facebook/xnli'" in message
    assert "pass source= a local .jsonl file" in message and "premise, hypothesis, label" in message


def test_unknown_language_fails_before_asking_the_hub(hub):
    with pytest.raises(BenchmarkDataError, match="MLQA has no language 'fr': pick from ar, de, en, es, hi, vi, zh"):
        load_mlqa("fr")
    with pytest.raises(BenchmarkDataError, match="facebook/xnli has no language 'xx'"):
        load_xnli("xx")
    assert hub[0] == []


def test_task_registry_dispatches_hub_benchmarks_by_name(tmp_path):
    from hf_minimodel.tasks import load_task

    path = write_jsonl(tmp_path / "xnli.jsonl", XNLI_ROWS)
    task = load_task("xnli", "fr", "test", source=path)
    assert (task.kind, task.metric, task.label_names) == ("classification", "accuracy", ["entailment", "neutral", "contradiction"])
    assert task.dataset["label"][:] == [0, 2, 1]
    with pytest.raises(ValueError, match="unknown task 'ner': choose from bible-genre"):
        load_task("ner", "fr", "test")
