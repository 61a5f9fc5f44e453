"""Hub model cards for what hf-minimodel saves: a language pack (`hub_cards/language_pack.md`) and a model merged
from one (`hub_cards/merged_model.md`).

Both cards are rendered from the pack's metadata: the Hub's fields (licence, base model, languages, library), the
step-2 cost (steps, tokens, FLOPs, seconds, device) and the quality figures recorded with
`LanguagePack.add_evaluation`, which go into `model-index`, the Hub's format for evaluation results. A card shows
only figures that were measured: with none recorded it says so instead of leaving a blank to fill.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import numbers
import string
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData, try_to_load_from_cache
from huggingface_hub.utils import validate_repo_id

from .checks import InputError
from .version import __version__

# The distribution's name in pyproject.toml; the lower bound is the version that wrote the card, which reads what it
# wrote (a language pack records its format version, and newer versions read older packs).
INSTALL_COMMAND = f'pip install "hf-minimodel>={__version__}"'

METHOD_NAMES = {
    "standard": "standard (embeddings trained over the full model)",
    "minijoint": "MiniJoint (embeddings trained over a mini-model pretrained jointly with the full model)",
    "minipost": "MiniPost (embeddings trained over the full model's bottom layers plus a few new layers)",
}
# The metadata keys that the training table shows in its own rows; any other key (except the evaluations, which have
# their own section) is listed after them, as it is.
TABLE_KEYS = (
    "language", "base_model", "base_fingerprint", "method", "mini_num_layers", "hidden_size", "vocab_size",
    "train_steps", "train_tokens", "train_flops", "train_seconds", "train_device", "init", "created_with", "license",
    "evaluations", "init_report",
)


def evaluation(task: str, dataset: str, metric: str, value, *, split: str | None = None, language: str | None = None,
               name: str | None = None) -> dict:
    """One measured quality figure as a language pack's metadata keeps it (see `LanguagePack.add_evaluation`)."""
    for label, text in (("task", task), ("dataset", dataset), ("metric", metric)):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"evaluation {label}={text!r} is not a name: pass e.g. task='fill-mask', dataset='xnli', metric='accuracy'")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InputError(f"evaluation value {value!r} is not a finite number: pass the figure that was measured, e.g. result['accuracy']")
    entry = {"task": task, "dataset": dataset, "metric": metric, "value": float(value)}
    entry.update({key: text for key, text in (("split", split), ("language", language), ("name", name)) if text is not None})
    return entry


def hub_model_id(name: str | None) -> str | None:
    """`name` if it can be a Hub model id (the card's `base_model` must be one), else None (a local path)."""
    if not name or Path(name).exists():
        return None
    try:
        validate_repo_id(name)
    except ValueError:
        return None
    return name


def base_license(name_or_path: str | None) -> str | None:
    """The base model's licence as its own model card declares it, when that card is on this machine (in a local
    folder, or in the Hub cache): no download. None when unknown, so that nobody's licence is guessed."""
    if not name_or_path:
        return None
    card = Path(name_or_path) / "README.md"
    if not card.is_file() and hub_model_id(str(name_or_path)):
        cached = try_to_load_from_cache(str(name_or_path), "README.md")
        card = Path(cached) if isinstance(cached, str) else card
    if not card.is_file():
        return None
    try:
        return ModelCard.load(card).data.license
    except Exception:  # noqa: BLE001 - a card that is not valid YAML tells us nothing about the licence
        return None


def pack_card(meta: dict, repo_id: str) -> str:
    """A language pack's README.md."""
    languages = _languages(meta)
    language = ", ".join(languages) or "the target language"
    base_model = meta.get("base_model") or "(unnamed base model)"
    return _template("language_pack.md").substitute(
        front_matter=_front_matter(
            meta, repo_id, library_name="hf-minimodel", tags=["mini-model-adaptation", "language-pack", "xlm-roberta"],
        ),
        title=f"Language pack: {language} for {base_model}",
        language=language,
        base_model=base_model,
        base_model_link=_base_model_link(meta),
        repo_id=repo_id,
        install=INSTALL_COMMAND,
        training_table=training_table(meta),
        evaluations=evaluations_section(meta),
    )


def merged_card(meta: dict, repo_id: str, prompts: dict | None = None) -> str:
    """A merged model's README.md: `meta` is the metadata of the pack merged in ({} if unknown); `prompts` are the
    sentence-transformers prompts when the folder was saved for sentence-transformers (else None)."""
    language = ", ".join(_languages(meta)) or "the target language"
    if prompts is None:
        library, pipeline_tag, install = "transformers", "fill-mask", 'pip install "transformers>=5"'
        what = "masked-language-model predictions, or as the body of a task model"
        usage = (f'from transformers import pipeline\n\nfill_mask = pipeline("fill-mask", model="{repo_id}")\n'
                 'print(fill_mask(f"a sentence in the target language with a {fill_mask.tokenizer.mask_token}"))')
    else:
        library, pipeline_tag, install = "sentence-transformers", "sentence-similarity", "pip install sentence-transformers"
        what = "sentence embeddings (the last hidden states averaged over the tokens, L2-normalised) with sentence-transformers"
        prompt = f', prompt_name="{next(iter(prompts))}"' if prompts else ""
        usage = (f'from sentence_transformers import SentenceTransformer\n\nmodel = SentenceTransformer("{repo_id}")\n'
                 f'embeddings = model.encode(["a sentence in the target language"]{prompt})')
    return _template("merged_model.md").substitute(
        front_matter=_front_matter(meta, repo_id, library_name=library, pipeline_tag=pipeline_tag,
                                   tags=["mini-model-adaptation", "xlm-roberta", "hf-minimodel"] + (["sentence-transformers"] if prompts is not None else [])),
        title=f"{meta.get('base_model') or 'XLM-R'} for {language} (mini-model adaptation)",
        language=language,
        base_model_link=_base_model_link(meta),
        what=what,
        install=install,
        usage=usage,
        install_hf_minimodel=INSTALL_COMMAND,
        # `created_with` is in every pack's metadata: without it there was no pack, only perhaps a licence.
        training_table=training_table(meta) if meta.get("created_with") else
        "Not recorded: the model was saved without the language pack it was merged from.\n",
        evaluations=evaluations_section(meta),
    )


def training_table(meta: dict) -> str:
    """How step 2 ran and what it cost, as a Markdown table."""
    def shown(key):
        return _shown(meta.get(key))

    flops, seconds = meta.get("train_flops"), meta.get("train_seconds")
    rows = [
        ("Target language", ", ".join(_languages(meta)) or "n/a"),
        ("Base model", _base_model_link(meta)),
        ("Base fingerprint", f"`{shown('base_fingerprint')}`"),
        ("Method", METHOD_NAMES.get(meta.get("method"), shown("method"))),
        ("Mini-model depth", shown("mini_num_layers") if meta.get("mini_num_layers") else "none (full model)"),
        ("Training steps", shown("train_steps")),
        ("Training tokens", shown("train_tokens")),
        ("Training compute", f"{flops:.3g} FLOPs" if flops else "n/a"),
        ("Training time", f"{seconds:,.0f} s ({seconds / 3600:.2f} h)" if seconds else "n/a"),
        ("Training device", shown("train_device")),
        ("Embedding initialisation", _init_rows(meta)),
        ("Vocabulary size", shown("vocab_size")),
        ("Hidden size", shown("hidden_size")),
        ("Licence", meta.get("license") or "unknown"),
        ("Created with", shown("created_with")),
    ]
    # Other keys as they are; the typed record lists every field, so those never set (None) are left out.
    rows += [(key, _shown(value)) for key, value in meta.items() if key not in TABLE_KEYS and value is not None]
    return "| | |\n|---|---|\n" + "".join(f"| {label} | {value} |\n" for label, value in rows)


def _init_rows(meta: dict) -> str:
    """The init's name, with how many rows each of its rules set (initialisation.InitReport) where recorded."""
    report = meta.get("init_report") or {}
    counts = ", ".join(f"{count:,} {origin}" for origin, count in (report.get("rows") or {}).items() if count)
    return f"{_shown(meta.get('init'))} ({counts} rows)" if counts else _shown(meta.get("init"))


def evaluations_section(meta: dict) -> str:
    """The recorded quality figures as a Markdown table, or a sentence saying there are none."""
    entries = meta.get("evaluations") or []
    if not entries:
        return ("No evaluation was recorded with the language pack, so this card reports no quality figure. "
                "Record one with `pack.add_evaluation(...)` before saving.\n")
    lines = ["Measured with this language pack and recorded in its metadata; the same figures are in this card's "
             "`model-index`.", "", "| task | dataset | split | language | metric | value |", "|---|---|---|---|---|---|"]
    for entry in entries:
        metric = entry.get("name") or entry["metric"]
        lines.append(f"| {entry['task']} | {entry['dataset']} | {entry.get('split') or ''} | "
                     f"{entry.get('language') or ''} | {metric} | {entry['value']:.4g} |")
    return "\n".join(lines) + "\n"


def _front_matter(meta: dict, repo_id: str, *, library_name: str, tags: list[str], pipeline_tag: str | None = None) -> str:
    # Scalars and lists as JSON, which is YAML; model-index through huggingface_hub, whose layout the Hub reads.
    lines = [f"library_name: {library_name}", f"license: {json.dumps(meta.get('license') or 'unknown')}",
             f"language: {json.dumps(_languages(meta))}"]
    if pipeline_tag:
        lines.append(f"pipeline_tag: {pipeline_tag}")
    lines += ["tags:", *(f"- {tag}" for tag in tags)]
    hub_base = hub_model_id(meta.get("base_model"))
    if hub_base:
        lines.append(f"base_model: {json.dumps(hub_base)}")
    entries = meta.get("evaluations") or []
    if entries:
        results = [
            EvalResult(
                task_type=entry["task"], dataset_type=entry["dataset"], dataset_name=entry["dataset"],
                dataset_split=entry.get("split"), dataset_config=entry.get("language"),
                # Six significant digits: a float32 metric's 0.15000000596046448 is 0.15, and no figure here is
                # measured more precisely than that. The metadata keeps the value as it was recorded.
                metric_type=entry["metric"], metric_value=float(f"{entry['value']:.6g}"), metric_name=entry.get("name"),
            )
            for entry in entries
        ]
        lines.append(ModelCardData(model_name=repo_id, eval_results=results).to_yaml())
    return "\n".join(lines)


def _languages(meta: dict) -> list[str]:
    language = meta.get("language")
    return language if isinstance(language, list) else [language] if language else []


def _base_model_link(meta: dict) -> str:
    hub_base = hub_model_id(meta.get("base_model"))
    return f"[{hub_base}](https://huggingface.co/{hub_base})" if hub_base else meta.get("base_model") or "(unnamed base model)"


def _shown(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _template(name: str) -> string.Template:
    # Installed: hub_cards/ is mapped into the package as hf_minimodel.hub_cards. Source tree: the top-level folder.
    try:
        text = (importlib.resources.files("hf_minimodel.hub_cards") / name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        text = (Path(__file__).resolve().parent.parent / "hub_cards" / name).read_text(encoding="utf-8")
    return string.Template(text)
