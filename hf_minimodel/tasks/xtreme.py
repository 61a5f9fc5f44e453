"""The paper's XTREME benchmarks (steps 3 and 4): XNLI, PAWS-X and MLQA, plus SQuAD for English QA training.

Every loader gives a `datasets.Dataset` in one layout per task type, whatever the source, so fine-tuning (step 3)
and zero-shot evaluation (step 4) never need to know where the data came from:

- sentence-pair classification (XNLI, PAWS-X): `text_a`, `text_b`, `label`, a `ClassLabel` whose names are the
  task's labels (`dataset.features["label"].names`);
- extractive QA (MLQA, SQuAD): `id`, `title`, `context`, `question`, `answers` ({"text": [...], "answer_start":
  [...]}, SQuAD's layout).

With `source=None` the data comes from the Hugging Face Hub; `source` is a local copy instead, for offline machines:
a JSON-lines file (.jsonl or .json), a TSV file with a header row (classification only), or a folder written by
`Dataset.save_to_disk` / `DatasetDict.save_to_disk` (`split` picks from a DatasetDict), with the Hub dataset's
columns. For QA a .json file may also be in SQuAD's nested format ({"data": [{"title", "paragraphs": [...]}]}),
which is how MLQA and SQuAD are distributed.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import datasets

from .. import hub
from ..checks import InputError, fix
from ..corpus import _from_disk, _is_saved_dataset

PathLike = str | os.PathLike

XNLI_LABELS = ("entailment", "neutral", "contradiction")
PAWSX_LABELS = ("not_paraphrase", "paraphrase")

# The configs of the Hub datasets, checked before asking the Hub so a mistyped language fails offline too.
XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX_LANGUAGES = ("de", "en", "es", "fr", "ja", "ko", "zh")
MLQA_LANGUAGES = ("ar", "de", "en", "es", "hi", "vi", "zh")

QA_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "title": datasets.Value("string"),
        "context": datasets.Value("string"),
        "question": datasets.Value("string"),
        # Sequence of a dict is a dict of lists: SQuAD's and MLQA's own "answers" layout.
        "answers": datasets.Sequence({"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}),
    }
)
_QA_REQUIRED = ("id", "context", "question", "answers")


class BenchmarkDataError(InputError):
    """A benchmark cannot be loaded; the message says what is wrong and how to fix it (an InputError: the user's)."""


# -- reading a source ------------------------------------------------------------------------------------------------


def _from_hub(name: str, config: str | None, split: str, revision: str | None, columns: Sequence[str]):
    flag = "--train-file" if split == "train" else "--test-file"
    local_copy = (f"{fix('pass source=', f'pass {flag} with')} a local .jsonl file, .tsv file or save_to_disk folder with the "
                  f"columns {', '.join(columns)}")
    unreachable = None if hub.in_datasets_cache(name) else hub.unreachable(name, "dataset")
    if unreachable and unreachable != "not found":  # say so at once: datasets would retry for half a minute first
        raise BenchmarkDataError(f"the Hub dataset {name!r} is not on this machine and the Hugging Face Hub cannot be "
                                 f"reached ({unreachable}): {local_copy}, or connect and retry")
    # Not found, a missing config or split, a legacy loading script: load_dataset's own error explains it best.
    return hub.load_dataset(name, config, split, revision=revision, error=BenchmarkDataError, advice=f"offline? {local_copy}",
                            what=f"could not load the Hub dataset {name!r}, config {config!r}, split {split!r}")


def _read_json(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("data"), list):
        return _flatten_squad(whole["data"], path)
    if isinstance(whole, list):
        return whole
    if isinstance(whole, dict):
        return [whole]
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise BenchmarkDataError(
                    f"{path} line {number} is not JSON ({err.msg}): write one JSON object per line"
                ) from None
    return rows


def _flatten_squad(articles: list, path: Path) -> list[dict]:
    # SQuAD's nested format, MLQA's official files included: one row per question.
    try:
        return [
            {
                "id": qa["id"],
                "title": article.get("title", ""),
                "context": paragraph["context"],
                "question": qa["question"],
                "answers": qa["answers"],
            }
            for article in articles
            for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]
        ]
    except (KeyError, TypeError) as err:
        raise BenchmarkDataError(
            f"{path} is not in SQuAD's format (missing {err}): each of data[].paragraphs[] needs context and qas "
            f"with id, question and answers"
        ) from None


def _read_tsv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        # No quoting: XNLI's and PAWS-X's sentences contain bare quote characters.
        lines = list(csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
    lines = [line for line in lines if line]
    if not lines:
        raise BenchmarkDataError(f"{path} is empty: write a header row, then one example per line")
    header, rows = lines[0], []
    for number, line in enumerate(lines[1:], start=2):
        if len(line) != len(header):
            raise BenchmarkDataError(
                f"{path} line {number} has {len(line)} tab-separated fields, the header {len(header)}: "
                f"remove tabs inside the text"
            )
        rows.append(dict(zip(header, line)))
    return rows


def _check_columns(present: Sequence[str], required: Sequence[str], where: str) -> None:
    missing = [column for column in required if column not in present]
    if missing:
        raise BenchmarkDataError(
            f"{where} has no column {', '.join(missing)}: its columns are {', '.join(present) or 'none'}; "
            f"this benchmark needs {', '.join(required)}"
        )


def _from_source(
    source: PathLike, split: str, required: Sequence[str], fix_row: Callable[[dict], dict], tsv: bool
) -> datasets.Dataset:
    path = Path(source).expanduser()
    if _is_saved_dataset(path):
        return _from_disk(path, split)
    if path.is_dir():
        raise BenchmarkDataError(
            f"folder {path} was not written by save_to_disk: pass a folder that was, or a .jsonl or .tsv file"
        )
    if not path.is_file():
        raise BenchmarkDataError(f"benchmark file not found: {path}: check the path")
    suffixes = (".jsonl", ".json", ".tsv") if tsv else (".jsonl", ".json")
    if path.suffix not in suffixes:
        raise BenchmarkDataError(
            f"{path} is not a {' or '.join(suffixes)} file: convert it, or save it with Dataset.save_to_disk"
        )
    rows = _read_tsv(path) if path.suffix == ".tsv" else _read_json(path)
    if not rows:
        raise BenchmarkDataError(f"{path} has no examples: write one example per line")
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise BenchmarkDataError(f"{path} example {number} is not a JSON object: write one object per line")
        _check_columns(list(row), required, f"{path} example {number}")
    return datasets.Dataset.from_list([fix_row(row) for row in rows])


# -- classification: XNLI, PAWS-X ------------------------------------------------------------------------------------


def _label_id(value, names: Sequence[str], where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "_").replace("-", "_")
        if text in names:
            return names.index(text)
        if text.isdigit() and int(text) < len(names):
            return int(text)
    raise BenchmarkDataError(
        f"label {value!r} in {where} is not a label of this task: "
        f"use 0 to {len(names) - 1} or one of {', '.join(names)}"
    )


def _classification(
    name: str,
    language: str,
    languages: Sequence[str],
    text_columns: tuple[str, str],
    names: Sequence[str],
    split: str,
    source: PathLike | None,
    revision: str | None,
) -> datasets.Dataset:
    required = (*text_columns, "label")
    if source is None:
        if language not in languages:
            raise BenchmarkDataError(f"{name} has no language {language!r}: pick one of {', '.join(languages)}")
        where = f"Hub dataset {name} ({language}, {split})"
        dataset = _from_hub(name, language, split, revision, required)
    else:
        where = os.fspath(source)
        dataset = _from_source(
            source, split, required, lambda row: {**row, "label": _label_id(row["label"], names, where)}, tsv=True
        )
    _check_columns(dataset.column_names, required, where)
    dataset = dataset.select_columns(list(required))
    # Labels arrive as ids of the source's own ClassLabel (whose names may be ordered differently, or be "0"/"1" as
    # on PAWS-X's Hub page), as plain ids, or as names; going through the names puts every one on this task's ids.
    feature = dataset.features["label"]
    source_names = feature.names if isinstance(feature, datasets.ClassLabel) else None

    def to_ids(batch):
        labels = batch["label"]
        if source_names is not None:
            labels = [source_names[i] if isinstance(i, int) and 0 <= i < len(source_names) else i for i in labels]
        return {
            "text_a": batch[text_columns[0]],
            "text_b": batch[text_columns[1]],
            "label": [_label_id(value, names, where) for value in labels],
        }

    features = datasets.Features(
        {
            "text_a": datasets.Value("string"),
            "text_b": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(names)),
        }
    )
    return dataset.map(to_ids, batched=True, remove_columns=list(required), features=features, desc="labels")


def load_xnli(
    language: str, split: str = "test", source: PathLike | None = None, *, revision: str | None = None
) -> datasets.Dataset:
    """XNLI in `language` (e.g. "fr"): `text_a` (premise), `text_b` (hypothesis), `label` (entailment, neutral,
    contradiction = 0, 1, 2). From the Hub's "facebook/xnli" (config = language), or `source` with the columns
    premise, hypothesis, label (an id or a label name); `revision` picks a Hub revision."""
    return _classification(
        "facebook/xnli", language, XNLI_LANGUAGES, ("premise", "hypothesis"), XNLI_LABELS, split, source, revision
    )


def load_pawsx(
    language: str, split: str = "test", source: PathLike | None = None, *, revision: str | None = None
) -> datasets.Dataset:
    """PAWS-X in `language` (e.g. "de"): `text_a`, `text_b`, `label` (not_paraphrase, paraphrase = 0, 1). From the
    Hub's "google-research-datasets/paws-x" (config = language), or `source` with the columns sentence1, sentence2,
    label (0/1 or a label name), e.g. PAWS-X's own test_2k.tsv; `revision` picks a Hub revision."""
    return _classification(
        "google-research-datasets/paws-x",
        language,
        PAWSX_LANGUAGES,
        ("sentence1", "sentence2"),
        PAWSX_LABELS,
        split,
        source,
        revision,
    )


# -- extractive QA: MLQA, SQuAD --------------------------------------------------------------------------------------


def _answers(value, where: str) -> dict:
    # Local files may list answers SQuAD's way, [{"text", "answer_start"}, ...], or as the Hub's dict of lists.
    try:
        if isinstance(value, list):
            return {"text": [a["text"] for a in value], "answer_start": [int(a["answer_start"]) for a in value]}
        return {"text": list(value["text"]), "answer_start": [int(start) for start in value["answer_start"]]}
    except (KeyError, TypeError, ValueError):
        raise BenchmarkDataError(
            f"answers {value!r} in {where} is not a list of answers: write "
            f'{{"text": ["..."], "answer_start": [0]}} or [{{"text": "...", "answer_start": 0}}]'
        ) from None


def _qa(name: str, config: str | None, split: str, source: PathLike | None, revision: str | None) -> datasets.Dataset:
    if source is None:
        where = f"Hub dataset {name} ({config or 'default'}, {split})"
        dataset = _from_hub(name, config, split, revision, _QA_REQUIRED)
    else:
        where = os.fspath(source)

        def fix_row(row):
            return {
                "id": str(row["id"]),
                "title": row.get("title", ""),
                "context": row["context"],
                "question": row["question"],
                "answers": _answers(row["answers"], where),
            }

        dataset = _from_source(source, split, _QA_REQUIRED, fix_row, tsv=False)
    _check_columns(dataset.column_names, _QA_REQUIRED, where)
    if "title" not in dataset.column_names:
        # The Hub's MLQA has no titles; SQuAD has. An empty title keeps one layout for both.
        dataset = dataset.add_column("title", [""] * len(dataset))
    dataset = dataset.select_columns(list(QA_FEATURES))
    try:
        return dataset.cast(QA_FEATURES)
    except (TypeError, ValueError) as err:
        raise BenchmarkDataError(
            f"{where} does not have SQuAD's column types ({err}): answers must be "
            f'{{"text": [str, ...], "answer_start": [int, ...]}} and id, title, context, question strings'
        ) from None


def load_mlqa(
    context_language: str,
    question_language: str | None = None,
    split: str = "test",
    source: PathLike | None = None,
    *,
    revision: str | None = None,
) -> datasets.Dataset:
    """MLQA with contexts in `context_language` and questions in `question_language` (default: the same), in
    SQuAD's layout (`id`, `title`, `context`, `question`, `answers`). From the Hub's "facebook/mlqa", config
    "mlqa.{context}.{question}" (splits "validation" and "test"), or `source`: a local copy with those columns, or
    one of MLQA's own files (e.g. test-context-de-question-de.json)."""
    question_language = question_language or context_language
    if source is None:
        for language in (context_language, question_language):
            if language not in MLQA_LANGUAGES:
                raise BenchmarkDataError(f"MLQA has no language {language!r}: pick from {', '.join(MLQA_LANGUAGES)}")
    return _qa("facebook/mlqa", f"mlqa.{context_language}.{question_language}", split, source, revision)


def load_squad(
    split: str = "train", source: PathLike | None = None, *, revision: str | None = None
) -> datasets.Dataset:
    """SQuAD v1.1, the English QA training data of step 3, in the same layout as `load_mlqa`. From the Hub's
    "rajpurkar/squad" (splits "train" and "validation"), or `source` (e.g. SQuAD's own train-v1.1.json)."""
    return _qa("rajpurkar/squad", None, split, source, revision)

