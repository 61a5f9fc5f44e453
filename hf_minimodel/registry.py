"""How saved dual models and mini-models meet transformers' Auto classes.

Their configs declare XLM-R's own model type, so stock transformers loads them as the XLM-R masked LMs they are laid
out as, with no remote-code question, and `auto_map` names our classes for `trust_remote_code=True`. The model type
therefore cannot tell our folders from a stock XLM-R's: `holds_mini_model` reads the mini-model fields and the
architecture instead.

Configs saved by earlier hf-minimodel declared a model type of their own (`LEGACY_MODEL_TYPE`); it stays registered
with `AutoConfig`, so those folders load as before. The package calls `register_auto_classes` on first use of any
public name, and the CLI at start-up; it is idempotent.
"""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig

from .configuration_minimodel import LEGACY_MODEL_TYPE, MiniModelConfig, is_mini_config


class LegacyMiniModelConfig(MiniModelConfig):
    """The model type that earlier saves declared, registered with `AutoConfig`, which builds what it returns
    through `from_dict`: a `MiniModelConfig`, so this alias never reaches a model or a save. (Returned as itself,
    it would save as the old type with this module for remote code, and transformers 5.24, which prefers a
    registered config class even with trust_remote_code=True, would refuse the remote model class for it: the
    two config classes' names must match.)"""

    model_type = LEGACY_MODEL_TYPE

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        return MiniModelConfig.from_dict({**config_dict, "model_type": MiniModelConfig.model_type}, **kwargs)


def register_auto_classes() -> None:
    AutoConfig.register(LEGACY_MODEL_TYPE, LegacyMiniModelConfig, exist_ok=True)


# The classes whose saves carry the mini-model fields in their configs.
OUR_CLASSES = ("XLMRobertaForDualMLM", "MiniModelForMaskedLM")


def holds_mini_model(path_or_repo_id, **kwargs) -> bool:
    """Whether the folder or Hub repository holds one of ours (MiniJoint's `XLMRobertaForDualMLM` or a
    `MiniModelForMaskedLM`): its `config.json` has the mini-model fields, and names one of our classes as its
    architecture. (A stock class loaded from one of our folders keeps the fields when it is saved again, a task
    model fine-tuned from the dual model for one, so the fields alone do not tell.) `kwargs` are the Hub's
    (token, revision, local_files_only, cache_dir)."""
    config_dict, _ = PretrainedConfig.get_config_dict(path_or_repo_id, **kwargs)
    architectures = config_dict.get("architectures") or list(OUR_CLASSES)  # none recorded: the fields decide
    return is_mini_config(config_dict) and any(name in OUR_CLASSES for name in architectures)
