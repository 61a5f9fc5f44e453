"""How saved dual models and mini-models meet transformers' Auto classes.

Their configs declare XLM-R's own model type, so stock transformers loads them as the XLM-R masked LMs they are laid
out as, with no remote-code question, and `auto_map` names our classes for `trust_remote_code=True`. The model type
therefore cannot tell our folders from a stock XLM-R's: `holds_mini_model` reads the mini-model fields instead.

Configs saved by earlier hf-minimodel declared a model type of their own (`LEGACY_MODEL_TYPE`); it stays registered
with `AutoConfig`, so those folders load as before. The package calls `register_auto_classes` on first use of any
public name, and before each Auto call of its own; it is idempotent.
"""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig

from .configuration_minimodel import LEGACY_MODEL_TYPE, MiniModelConfig


class LegacyMiniModelConfig(MiniModelConfig):
    """`MiniModelConfig` under the model type that earlier saves declared: what `AutoConfig` returns for them."""

    model_type = LEGACY_MODEL_TYPE


def register_auto_classes() -> None:
    AutoConfig.register(LEGACY_MODEL_TYPE, LegacyMiniModelConfig, exist_ok=True)


def holds_mini_model(path_or_repo_id, **kwargs) -> bool:
    """Whether the folder or Hub repository holds one of ours (MiniJoint's `XLMRobertaForDualMLM` or a
    `MiniModelForMaskedLM`), from the mini-model fields in its `config.json`; `kwargs` are the Hub's (token,
    revision, local_files_only)."""
    config_dict, _ = PretrainedConfig.get_config_dict(path_or_repo_id, **kwargs)
    return config_dict.get("mini_num_layers") is not None
