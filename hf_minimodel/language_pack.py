"""`LanguagePack`: what step 2 produces and what a user shares: a target tokenizer, the target word embeddings (and
the MLM output bias), and how they were made.

A pack plugs into its base model or into any model fine-tuned from it with the embedding layer frozen (step 3), for
zero-shot transfer (step 4): `LanguagePack.from_pretrained(repo).apply(model)`.

Why not a PEFT adapter: a new language is a new vocabulary, so the embedding matrix changes size. Checked in peft
0.21: `PeftModel.from_pretrained` copies saved `modules_to_save` and `trainable_token_indices` weights with
`load_state_dict`, which fails with "size mismatch" when their vocabulary differs from the base model's (with
`ignore_mismatched_sizes=True` it drops them with a warning), so the user would have to resize the base model to
the pack's vocabulary first; and a PEFT adapter carries no tokenizer.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from huggingface_hub import HfApi, snapshot_download
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoTokenizer

from . import cards, hub
from .version import __version__
from .checks import InputError, check_tokenizer_files, check_weights, fix
from .merge import merge_embeddings
from .xlmr import base_fingerprint, check_pad_id, check_same_base
from .methods import METHODS
from .pack_metadata import FORMAT_VERSION, PackMetadata
from .saving import atomic_directory, recover, write_training_log

WEIGHTS_NAME = "language_pack.safetensors"
METADATA_NAME = "language_pack.json"
CARD_NAME = "README.md"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
# What a Hub download fetches: the pack's own files and whatever a tokenizer's save_pretrained writes.
TOKENIZER_FILES = ["tokenizer.json", TOKENIZER_CONFIG_NAME, "special_tokens_map.json", "added_tokens.json", "*.model"]
PACK_FILES = [WEIGHTS_NAME, METADATA_NAME, CARD_NAME, *TOKENIZER_FILES]


@dataclass(eq=False)
class LanguagePack:
    """A target tokenizer with its word embeddings, for one base model.

    Args:
        tokenizer: the target-language tokenizer; `len(tokenizer)` rows of embeddings.
        embeddings: the word embeddings, shape `(len(tokenizer), hidden_size)`.
        output_bias: the MLM heads' vocabulary bias, shape `(len(tokenizer),)`, or `None` (zeros when applied).
        metadata: how the pack was made and what it scored, a `PackMetadata` (a dict is converted): `language`,
            `base_model`, `base_fingerprint` (see `xlmr.base_fingerprint`), `method` ("standard", "minijoint" or
            "minipost"), step 2's cost and settings, `license` (the base model's; the card says "unknown" when it
            is None), `evaluations` (see `add_evaluation`), and any other JSON values (in `extra`). `hidden_size`,
            `vocab_size` and `created_with` are filled in.
    """

    tokenizer: object = field(repr=False)
    embeddings: torch.Tensor = field(repr=False)
    output_bias: torch.Tensor | None = field(default=None, repr=False)
    metadata: PackMetadata = field(default_factory=PackMetadata)

    def __post_init__(self):
        if self.embeddings.ndim != 2:
            raise InputError(f"embeddings must be a (vocab_size, hidden_size) matrix, got shape {tuple(self.embeddings.shape)}")
        vocab_size, hidden_size = self.embeddings.shape
        if len(self.tokenizer) != vocab_size:
            raise InputError(
                f"the tokenizer has {len(self.tokenizer)} tokens but the embeddings have {vocab_size} rows: "
                "a language pack needs one row per token of its tokenizer"
            )
        if self.output_bias is not None and tuple(self.output_bias.shape) != (vocab_size,):
            raise InputError(f"the output bias has shape {tuple(self.output_bias.shape)} but the tokenizer needs ({vocab_size},)")
        metadata = PackMetadata.from_dict(self.metadata)  # a copy: the caller's record stays as it was
        for key, actual in (("vocab_size", vocab_size), ("hidden_size", hidden_size)):
            if metadata[key] is not None and metadata[key] != actual:
                raise InputError(f"metadata says {key}={metadata[key]} but the embeddings have {key}={actual}")
            metadata[key] = actual
        if metadata["method"] is not None and metadata["method"] not in METHODS:
            raise InputError(f"metadata method={metadata['method']!r} is not one of {METHODS}")
        metadata["created_with"] = metadata["created_with"] or f"hf-minimodel {__version__}"
        self.metadata = metadata

    def __repr__(self) -> str:
        shown = ("language", "base_model", "method", "vocab_size", "hidden_size")
        return f"LanguagePack({', '.join(f'{key}={self.metadata[key]!r}' for key in shown)})"

    def apply(self, model, check_base: bool = True):
        """Put the pack's vocabulary into `model` (in place; returned): see `merge.merge_embeddings`.

        With `check_base`, first make sure `model` is built on the base model the pack was trained for: its
        embedding layer's frozen parts (positions, token types, layer norm) must have the pack's fingerprint.
        """
        self.check_model(model.config, base_fingerprint(model) if check_base else None, check_base)
        return merge_embeddings(model, self.embeddings, self.tokenizer, self.output_bias)

    def check_model(self, config, fingerprint: str | None, check_base: bool = True) -> None:
        """Raise `InputError` unless a model with `config` and base fingerprint `fingerprint` can take this pack: the
        same hidden size, the base the pack was trained for (`xlmr.check_same_base`, with `check_base`; a fingerprint of
        None is not known yet and passes), and the pad id its tokenizer keeps. `apply` calls this on the model; the
        CLI, on a folder's config and weights before it loads anything."""
        pack_hidden = self.metadata["hidden_size"]
        if pack_hidden != config.hidden_size:
            raise InputError(
                f"language pack has hidden size {pack_hidden} but the model has {config.hidden_size}: it was trained for "
                f"another base model ({self.metadata['base_model'] or 'unnamed'})"
            )
        if check_base:
            check_same_base(fingerprint, self.metadata["base_fingerprint"], "the language pack", self.metadata["base_model"])
        check_pad_id(self.tokenizer.pad_token_id, config.pad_token_id)

    def save_pretrained(self, path: str | os.PathLike, overwrite: bool = False, *, log_history: list | None = None) -> Path:
        """Write the pack into the folder `path`, atomically: tokenizer files, `language_pack.safetensors`,
        `language_pack.json` and a model card (`README.md`); with `log_history` (step 2's Trainer log), also
        `training_log.jsonl`."""
        with atomic_directory(path, overwrite=overwrite) as folder:
            # The card's usage example names the folder; push_to_hub writes the repository id instead.
            self._write(folder, repo_id=Path(path).name)
            if log_history is not None:
                write_training_log(folder, log_history)
        return Path(path)

    def _write(self, folder: Path, repo_id: str) -> None:
        self.metadata.check()  # a value set after the pack was made must still read back
        self.tokenizer.save_pretrained(folder)
        tensors = {"word_embeddings": self.embeddings.detach().cpu().contiguous()}
        if self.output_bias is not None:
            tensors["output_bias"] = self.output_bias.detach().cpu().contiguous()
        save_file(tensors, folder / WEIGHTS_NAME, metadata={"format": "pt", "language_pack_format": str(FORMAT_VERSION)})
        (folder / METADATA_NAME).write_text(json.dumps(self.metadata.to_dict(), indent=2) + "\n", encoding="utf-8")
        (folder / CARD_NAME).write_text(self.model_card(repo_id), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, revision: str | None = None, token: str | bool | None = None) -> "LanguagePack":
        """Load a pack from a local folder or a Hub repository (safetensors and JSON only: nothing is unpickled)."""
        folder = _pack_folder(path_or_repo_id, revision, token)
        for name in (METADATA_NAME, WEIGHTS_NAME, TOKENIZER_CONFIG_NAME):
            if not (folder / name).is_file():
                raise InputError(f"{path_or_repo_id} has no {name}: not a complete language pack (write one with "
                                 f"{fix('LanguagePack.save_pretrained', 'minimodel train-embeddings')})")
        metadata = PackMetadata.load(folder / METADATA_NAME)  # version, fields and types checked, or a clear error
        check_weights(folder)  # a damaged language_pack.safetensors, named
        with safe_open(folder / WEIGHTS_NAME, framework="pt") as weights:
            version = int((weights.metadata() or {}).get("language_pack_format", FORMAT_VERSION))
            if version > FORMAT_VERSION:
                raise InputError(f"{path_or_repo_id} is a version-{version} language pack: upgrade hf-minimodel to load it")
            if "word_embeddings" not in weights.keys():
                raise InputError(f"{path_or_repo_id}/{WEIGHTS_NAME} has no word_embeddings tensor: not a language pack")
            embeddings = weights.get_tensor("word_embeddings")
            output_bias = weights.get_tensor("output_bias") if "output_bias" in weights.keys() else None
        check_tokenizer_files(folder, "language pack")  # an empty or missing vocabulary, named
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as error:
            raise InputError(f"{path_or_repo_id} has no loadable tokenizer: {error}") from error
        return cls(tokenizer=tokenizer, embeddings=embeddings, output_bias=output_bias, metadata=metadata)

    def push_to_hub(
        self,
        repo_id: str,
        private: bool | None = None,
        token: str | bool | None = None,
        commit_message: str = "Upload language pack (hf-minimodel)",
    ):
        """Upload the pack to a Hub model repository (created if needed); returns the `CommitInfo`."""
        api = HfApi(token=token)
        with tempfile.TemporaryDirectory() as folder:
            with _upload_failures(repo_id):
                repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
            self._write(Path(folder), repo_id=repo_id)
            with _upload_failures(repo_id):
                # delete_patterns: tokenizer files of an earlier upload that this tokenizer does not write would
                # otherwise stay in the repository and be read by AutoTokenizer.
                return api.upload_folder(
                    repo_id=repo_id, folder_path=folder, commit_message=commit_message, delete_patterns=TOKENIZER_FILES
                )

    def add_evaluation(self, task: str, dataset: str, metric: str, value: float, *, split: str | None = None,
                       language: str | None = None, name: str | None = None) -> None:
        """Record a quality figure measured with this pack, for its metadata and its model card's `model-index`.

        ```python
        loss = heldout_mlm_loss(adapter.merge(pack), pack.tokenizer, test_texts)
        pack.add_evaluation("fill-mask", "bible", "loss", loss, split="test", language="sw", name="held-out MLM loss")
        result = evaluate_zero_shot(task_model, xnli_sw.dataset, pack=pack)
        pack.add_evaluation("text-classification", "facebook/xnli", "accuracy", result["accuracy"], split="test", language="sw")
        ```

        Args:
            task: the Hub task type it was measured on: "fill-mask" (held-out MLM loss), "text-classification"
                (zero-shot accuracy), "question-answering", "sentence-similarity" (retrieval)...
            dataset: the dataset's Hub id or name. metric: its type ("loss", "accuracy", "f1"...).
            value: the measured number. split, language: where it was measured. name: a readable metric name.
        """
        entry = cards.evaluation(task, dataset, metric, value, split=split, language=language, name=name)
        self.metadata["evaluations"] = [*(self.metadata.get("evaluations") or []), entry]

    def model_card(self, repo_id: str) -> str:
        """The pack's README.md, from `hub_cards/language_pack.md`."""
        return cards.pack_card(self.metadata, repo_id)


def _upload_failures(repo_id: str):
    return hub.failures(f"could not upload the language pack to the Hugging Face Hub as {repo_id}",
                        "check the connection, and that the token (`hf auth login`, or token=) may write there", OSError,
                        repo_id=repo_id)


def _pack_folder(path_or_repo_id: str | os.PathLike, revision: str | None, token: str | bool | None) -> Path:
    local = Path(path_or_repo_id)
    if not local.exists():
        recover(local)  # a save killed between its two renames left the previous version beside it: put it back
    if local.is_dir():
        return local
    # An invalid id, not found, offline, gated: all mean "cannot get it" here.
    with hub.failures(f"{path_or_repo_id} is not a local folder, and downloading it as a language pack from the Hugging "
                      "Face Hub failed", "check the path or the repository id (and revision, token)", OSError):
        return Path(snapshot_download(str(path_or_repo_id), revision=revision, token=token, allow_patterns=PACK_FILES))


__all__ = ["LanguagePack", "PackMetadata"]
