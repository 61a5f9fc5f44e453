"""Steps 3 and 4: cross-lingual transfer.

Step 3 fine-tunes a stock XLM-R task model on source-language data with its embedding layer frozen; step 4 swaps a
language pack's target vocabulary into that model and evaluates it, zero-shot, on target-language data.
"""

import copy
import time

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    XLMRobertaForQuestionAnswering,
    XLMRobertaForSequenceClassification,
    default_data_collator,
)

from . import freezing
from .checks import InputError, fix, local_folder, read_json, weight_shapes
from .configuration_minimodel import stock_config
from .defaults import BATCH_SIZE, RETRIEVAL_CANDIDATES, STEP3
from .pooling import sentence_embeddings
from .modeling_minimodel import XLMRobertaForDualMLM
from .registry import holds_mini_model
from .tasks import RETRIEVAL, load_task
from .tasks.metrics import load_metric, majority_baseline, retrieval_accuracy
from .tasks.qa import postprocess_qa_predictions, prepare_qa_eval_features, prepare_qa_train_features
from .progress import close_progress, readable_progress
from .training import MeanLossTrainer, TrainingReport, training_arguments
from .xlmr import sequence_length

TASK_KINDS = ("classification", "qa")
TASK_AUTO_CLASSES = {"classification": AutoModelForSequenceClassification, "qa": AutoModelForQuestionAnswering}
_STOCK_CLASSES = {"classification": XLMRobertaForSequenceClassification, "qa": XLMRobertaForQuestionAnswering}


def load_task_model(model, kind: str = "classification", label_names: list[str] | None = None):
    """A stock XLM-R task model (sequence classification or extractive QA) with a new head on `model`'s body.

    `model` is a folder or Hub id of any XLM-R checkpoint, a merged model, or a MiniJoint `XLMRobertaForDualMLM`
    (its secondary head is dropped); or such a model already in memory.
    """
    if kind not in TASK_KINDS:
        raise InputError(f"task kind {kind!r} is not one of {TASK_KINDS}")
    auto_class, stock_class = TASK_AUTO_CLASSES[kind], _STOCK_CLASSES[kind]
    labels = {} if label_names is None else {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        if not holds_mini_model(model):
            return auto_class.from_pretrained(model, **labels)  # a stock checkpoint: its own loader, new task head
        model = XLMRobertaForDualMLM.from_pretrained(model)
    task_model = stock_class(stock_config(model.config, **labels))
    # Everything but the masked-LM head(s) carries over; the task head keeps its fresh initialisation.
    task_model.roberta.load_state_dict(model.roberta.state_dict(), strict=False)
    return task_model.to(model.device)


# Where each kind of task model keeps its head, in transformers' XLM-R task classes.
TASK_HEADS = {"classification": "classifier.", "qa": "qa_outputs."}


def load_fine_tuned(path, kind: str = "classification", label_names: list[str] | None = None):
    """Step 3's result, loaded for step 4: the task model in `path` (a folder or Hub id), refused with `InputError`
    unless it has a trained head for the task. A masked LM or a bare body loads too, with a new, random head, and
    scores chance: a number that means nothing. A local folder is checked before anything loads (config.json and
    the weights' header); a Hub model, by what loading it reports missing. For classification the head must also
    be for the task's labels (`label_names`): as many, and the same names when the model records names."""
    check_fine_tuned(path, kind, label_names)
    model, loading = TASK_AUTO_CLASSES[kind].from_pretrained(path, output_loading_info=True)
    trained = [name for name in model.state_dict() if name.startswith(TASK_HEADS[kind]) and name not in loading["missing_keys"]]
    _check_task_head(path, trained, model.config.id2label, kind, label_names)
    return model


def check_fine_tuned(path, kind: str = "classification", label_names: list[str] | None = None) -> None:
    """`load_fine_tuned`'s check of a local folder, before anything loads (a Hub id passes: it is checked as it
    loads)."""
    if kind not in TASK_KINDS:
        raise InputError(f"task kind {kind!r} is not one of {TASK_KINDS}")
    folder = local_folder(path)
    if folder is not None:
        id2label = read_json(folder / "config.json", "save the model again").get("id2label")
        _check_task_head(path, weight_shapes(folder), id2label, kind, label_names)


def _check_task_head(path, weight_names, id2label, kind: str, label_names) -> None:
    head = TASK_HEADS[kind]
    if not any(name.startswith(head) for name in weight_names):
        raise InputError(
            f"{path} has no trained {kind} head (no {head}* weights): it is not a task model, and a new head would score "
            f"chance; evaluate the model that step 3 wrote ({fix('finetune', 'minimodel finetune')} on the task)"
        )
    if kind != "classification" or label_names is None or not id2label:
        return
    names = [str(id2label[key]) for key in sorted(id2label, key=int)]
    if len(names) != len(label_names) or (names != [f"LABEL_{i}" for i in range(len(names))] and names != list(label_names)):
        raise InputError(f"{path} was fine-tuned for the labels {names}, but the task's are {list(label_names)}: "
                         "evaluate a model fine-tuned on this task")


def _encode_classification(dataset: Dataset, tokenizer, max_seq_length: int) -> Dataset:
    def encode(batch):
        second = batch["text_b"] if "text_b" in batch and any(batch["text_b"]) else None
        encoded = tokenizer(batch["text_a"], second, truncation=True, max_length=max_seq_length)
        encoded["labels"] = batch["label"]
        return encoded

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="Tokenizing")


def finetune(
    model,
    tokenizer,
    train_dataset: Dataset,
    output_dir,
    *,
    kind: str = "classification",
    lora=False,
    max_steps: int = STEP3.steps,
    learning_rate: float = STEP3.learning_rate,
    batch_size: int = BATCH_SIZE,
    max_seq_length: int | None = None,
    doc_stride: int = 64,
    warmup_ratio: float = 0.1,
    seed: int = 0,
    disable_tqdm: bool | None = None,
    **training_args,
):
    """Step 3: fine-tune the task model on source-language data, embedding layer frozen, body trainable.

    `train_dataset` has `text_a`, `text_b`, `label` (classification) or `question`, `context`, `answers` (QA).
    `lora=True` (or a `peft.LoraConfig`) trains low-rank adapters on the attention projections plus the task head
    instead of the whole body, then merges them back, so what comes out is a plain model a language pack applies to.
    Examples are cut at `max_seq_length` tokens (`xlmr.sequence_length`). Returns `(model, TrainingReport)`.
    """
    max_seq_length = sequence_length(model.config, max_seq_length)
    freezing.for_step3(model)  # the embedding layer stays as step 2's packs expect it
    if kind == "classification":
        features, collator = _encode_classification(train_dataset, tokenizer, max_seq_length), DataCollatorWithPadding(tokenizer)
    elif kind == "qa":
        features = train_dataset.map(
            lambda batch: prepare_qa_train_features(batch, tokenizer, max_seq_length, doc_stride),
            batched=True, remove_columns=train_dataset.column_names, desc="Preparing QA features",
        )
        collator = default_data_collator
    else:
        raise InputError(f"task kind {kind!r} is not one of {TASK_KINDS}")

    trained = model
    if lora:
        from peft import LoraConfig, TaskType, get_peft_model

        config = lora if isinstance(lora, LoraConfig) else LoraConfig(
            task_type=TaskType.SEQ_CLS if kind == "classification" else TaskType.QUESTION_ANS,
            r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"],
        )
        trained = get_peft_model(model, config)

    args = training_arguments(
        output_dir, max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate, warmup_ratio=warmup_ratio,
        weight_decay=0.01, seed=seed, logging_steps=max(1, max_steps // 10), disable_tqdm=disable_tqdm,
        save_strategy="no", **training_args,
    )
    trainer = readable_progress(MeanLossTrainer(model=trained, args=args, train_dataset=features, data_collator=collator,
                                                processing_class=tokenizer))
    start = time.perf_counter()
    try:
        trainer.train()
    finally:
        close_progress(trainer)
    report = TrainingReport.from_trainer(trainer, time.perf_counter() - start)
    if lora:
        model = trained.merge_and_unload()
    return model.eval(), report


@torch.no_grad()
def _logits(model, features: Dataset, collator, batch_size: int, columns: list[str]):
    features = features.select_columns(columns)
    outputs = []
    for start in range(0, len(features), batch_size):
        rows = [features[i] for i in range(start, min(start + batch_size, len(features)))]
        batch = {k: v.to(model.device) for k, v in collator(rows).items()}
        outputs.append(model(**batch))
    return outputs


def evaluate_zero_shot(
    model,
    dataset: Dataset,
    *,
    pack=None,
    tokenizer=None,
    kind: str = "classification",
    batch_size: int = 64,
    max_seq_length: int | None = None,
    doc_stride: int = 64,
    check_base: bool = True,
) -> dict:
    """Step 4: evaluate the fine-tuned task model on target-language `dataset`.

    With `pack`, a copy of `model` gets the pack's vocabulary first (the zero-shot transfer); without, `tokenizer`
    is used as is (e.g. the source-language evaluation). Returns the metric(s), the number of examples and, for
    classification, the majority-class baseline of `dataset`. Examples are cut at `max_seq_length` tokens
    (`xlmr.sequence_length`).
    """
    max_seq_length = sequence_length(model.config, max_seq_length)
    if pack is not None:
        model = pack.apply(copy.deepcopy(model), check_base=check_base)
        tokenizer = pack.tokenizer
    if tokenizer is None:
        raise InputError("pass the language pack to evaluate with (pack=...), or the tokenizer the model already uses (tokenizer=...)")
    model.eval()
    if kind == "classification":
        features = _encode_classification(dataset, tokenizer, max_seq_length)
        columns = [c for c in features.column_names if c != "labels"]
        outputs = _logits(model, features, DataCollatorWithPadding(tokenizer), batch_size, columns)
        predictions = torch.cat([o.logits for o in outputs]).argmax(-1).cpu().numpy()
        references = np.asarray(dataset["label"])
        result = load_metric("accuracy").compute(predictions=predictions, references=references)
        result["majority_baseline"] = majority_baseline(dataset)  # of the evaluation set itself
    elif kind == "qa":
        features = dataset.map(
            lambda batch: prepare_qa_eval_features(batch, tokenizer, max_seq_length, doc_stride),
            batched=True, remove_columns=dataset.column_names, desc="Preparing QA features",
        )
        columns = ["input_ids", "attention_mask"]
        outputs = _logits(model, features, default_data_collator, batch_size, columns)  # features are padded already
        start = torch.cat([o.start_logits for o in outputs]).cpu().numpy()
        end = torch.cat([o.end_logits for o in outputs]).cpu().numpy()
        predictions = postprocess_qa_predictions(dataset, features, start, end)
        result = load_metric("squad").compute(
            predictions=[{"id": k, "prediction_text": v} for k, v in predictions.items()],
            references=[{"id": ex["id"], "answers": ex["answers"]} for ex in dataset],
        )
    else:
        raise InputError(f"task kind {kind!r} is not one of {TASK_KINDS}")
    result["num_examples"] = len(dataset)
    return result


def evaluate_retrieval(
    model,
    source_tokenizer,
    probe,
    *,
    pack=None,
    tokenizer=None,
    batch_size: int = 64,
    max_seq_length: int | None = None,
    prefix: str = "",
    check_base: bool = True,
) -> dict:
    """Step 4 without step 3: cross-lingual retrieval, for embedding models.

    The probe's source-language queries are embedded by `model` as it is (with `source_tokenizer`); its
    target-language pool by a copy of `model` with `pack` applied (or, without a pack, by `model` with `tokenizer`,
    e.g. the base model's own vocabulary as the upper line). Returns accuracy@1, the pool size and chance (1/pool).
    Verses are cut at `max_seq_length` tokens (`xlmr.sequence_length`).
    """
    max_seq_length = sequence_length(model.config, max_seq_length)
    if pack is not None:
        target_model, tokenizer = pack.apply(copy.deepcopy(model), check_base=check_base), pack.tokenizer
    elif tokenizer is not None:
        target_model = model
    else:
        raise InputError("pass the language pack to evaluate with (pack=...), or the tokenizer for the target texts (tokenizer=...)")
    options = dict(batch_size=batch_size, max_seq_length=max_seq_length, prefix=prefix)
    queries = sentence_embeddings(model, source_tokenizer, probe.queries, **options)
    pool = sentence_embeddings(target_model, tokenizer, probe.pool, **options)
    return {
        "retrieval_at_1": retrieval_accuracy(queries, pool, probe.gold),
        "chance": 1 / len(probe.pool),
        "num_examples": len(probe.queries),
        "num_candidates": len(probe.pool),
    }



class ZeroShotEvaluation:
    """Step 4 over several language packs of one task: the test data of each language read once, before any model is
    loaded (so that a language without data, or a bad file, is refused first), then each pack swapped into the model,
    or the model as it is, scored on its language. `minimodel evaluate` and benchmarks/reproduce.py both run step 4
    through it.

    ```python
    step4 = ZeroShotEvaluation("bible-genre", ["en", "fr"])
    rows = step4.rows(task_model, [(None, "en"), (french_pack, "fr")], tokenizer=source_tokenizer)
    ```

    Args:
        task: a `load_task` task, or "bible-retrieval" (`tasks.RETRIEVAL`: for embedding models, no step 3):
            `source_language` verses found among their translations, `num_candidates` of them (in the source language
            itself, among its second translation: `tasks.bible_tasks.retrieval_codes`).
        languages: the languages whose test data to read.
        source, max_examples, seed: `load_task`'s (`seed` also draws the retrieval candidates).
    """

    def __init__(self, task: str, languages, *, source_language: str = "en", num_candidates: int = RETRIEVAL_CANDIDATES,
                 source=None, max_examples: int | None = None, seed: int = 0):
        self.task, self.source_language = task, source_language
        self.retrieval = task == RETRIEVAL
        if self.retrieval:
            from .tasks.bible_tasks import retrieval_codes, retrieval_task

            def read(language):
                return retrieval_task(*retrieval_codes(source_language, language), "test", num_candidates=num_candidates,
                                      seed=seed)
        else:
            def read(language):
                return load_task(task, language, "test", source=source, max_examples=max_examples, seed=seed)
        self.data = {language: read(language) for language in dict.fromkeys(languages)}

    @property
    def metric(self) -> str:
        """The headline metric's key in each row: retrieval_at_1, accuracy or f1."""
        return "retrieval_at_1" if self.retrieval else next(iter(self.data.values())).metric

    @property
    def label_names(self) -> list[str] | None:
        """The task's labels (classification), which the task model's head must have been fine-tuned for."""
        return None if self.retrieval else next(iter(self.data.values())).label_names

    def baseline(self, language: str) -> float | None:
        """The score to beat on `language`'s data: chance (1 / candidates) for retrieval, the majority class's share
        for classification; None for question answering."""
        data = self.data[language]
        if self.retrieval:
            return 1 / len(data.pool)
        return majority_baseline(data.dataset) if data.kind == "classification" else None

    def size(self, language: str) -> int:
        """How many examples `language`'s data has (retrieval: candidates, each also a query)."""
        data = self.data[language]
        return len(data.pool) if self.retrieval else len(data.dataset)

    def curve(self, model, language: str, packs, **options) -> list[dict]:
        """A learning curve, as `speedup` reads it: for each of `packs` (a `LearningCurve`'s, in step order from step
        0), step 2's steps, FLOPs and seconds so far, and its score (the headline metric, as "accuracy")."""
        return [{"step": pack.metadata["train_steps"], "flops": pack.metadata["train_flops"],
                 "seconds": pack.metadata["train_seconds"],
                 "accuracy": self.score(model, language, pack=pack, **options)[self.metric]} for pack in packs]

    def score(self, model, language: str, *, pack=None, tokenizer=None, max_seq_length: int | None = None,
              prefix: str = "", check_base: bool = True) -> dict:
        """`evaluate_zero_shot` (or `evaluate_retrieval`) of `model` with `pack` swapped in, or as it is with
        `tokenizer` (its own: for retrieval, the source verses are embedded with it either way), on `language`."""
        data = self.data[language]
        own = None if pack is not None else tokenizer
        if self.retrieval:
            return evaluate_retrieval(model, tokenizer, data, pack=pack, tokenizer=own, max_seq_length=max_seq_length,
                                      prefix=prefix, check_base=check_base)
        return evaluate_zero_shot(model, data.dataset, pack=pack, tokenizer=own, kind=data.kind,
                                  max_seq_length=max_seq_length, check_base=check_base)

    def rows(self, model, runs, **options) -> list[dict]:
        """One row per `(pack, language)` of `runs` (`pack` None: the model as it is, in the source language or, for
        retrieval, with its own vocabulary, the upper line): language, method, task and the metrics (`score`)."""
        rows = []
        for pack, language in runs:
            method = pack.metadata["method"] if pack is not None else ("own vocabulary" if self.retrieval else "source (no transfer)")
            row = {"language": language, "method": method, "task": self.task}
            row |= {"source_language": self.source_language} if self.retrieval else {}
            rows.append(row | self.score(model, language, pack=pack, **options))
        return rows
