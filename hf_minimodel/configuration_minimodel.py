"""Configuration of mini-model adaptation (Marchisio et al., "Mini-Model Adaptation", Findings of ACL 2023).

This file travels to the Hub as remote code: it imports only transformers (and torch, through it).
"""

import dataclasses

from transformers import XLMRobertaConfig

# The model type that configs saved by earlier hf-minimodel declared (tests/artifacts/v0.1.0). A type only this
# package knows made every stock tool (AutoTokenizer, pipeline) ask the remote-code question on our folders.
LEGACY_MODEL_TYPE = "xlm-roberta-minimodel"

# No @strict here: PreTrainedConfig.__init_subclass__ already makes this a dataclass, and the decorator would
# import huggingface_hub, which remote code must not need. check_mini_model does the validation instead.
class MiniModelConfig(XLMRobertaConfig):
    r"""
    An XLM-R configuration plus where the mini-model sits in it.

    The same class describes two models:

    * a **full model** (`XLMRobertaForDualMLM`, MiniJoint's step-1 model): `num_hidden_layers` is the full depth and
      the secondary MLM head reads the output of layer `mini_num_layers`;
    * a **standalone mini-model** (`MiniModelForMaskedLM`): `full_num_hidden_layers` records the depth of the full
      model its layers were cut from, and `num_hidden_layers` counts the layers the mini-model really has, the
      `mini_num_layers` shared with the full model plus `mini_num_new_layers` trained on top (MiniPost).
      Keeping `num_hidden_layers` truthful is what lets every transformers utility (FLOPs estimates, device maps,
      layer counts) treat the mini-model as the small XLM-R it is.

    Args:
        mini_num_layers (`int`, *optional*):
            Depth of the mini-model: how many of the full model's bottom layers it shares. Defaults to a third of
            `num_hidden_layers` (at least 1): 4 of 12 at base geometry, the depth at which the paper's mini-models
            recover the full model's transfer accuracy at a fraction of the compute.
        mini_loss_weight (`float`, *optional*, defaults to 1.0):
            MiniJoint's weight on the secondary (mini) MLM loss: `loss = loss_full + mini_loss_weight * loss_mini`.
        mini_num_new_layers (`int`, *optional*, defaults to 0):
            MiniPost's new transformer layers on top of the extracted ones. 0 for MiniJoint, whose mini-model is
            made only of the full model's own layers.
        full_num_hidden_layers (`int`, *optional*):
            Set on a standalone mini-model only: the depth of the full model it was cut from.
        mlm_head_on_labelled_only (`bool`, *optional*, defaults to `True`):
            With `labels`, project to the vocabulary only at labelled positions (labels != -100). The loss is the
            same; the cost is not: at a 250k vocabulary the projection dominates a step (measured 12.6 s vs 4.6 s
            per 8x128 step on 2 CPU threads for a 12-layer model), and masked LM labels only ~15% of positions.
            The returned `logits` then hold only those rows, in the order of `labels[labels != -100]`.
        mini_method (`str`, *optional*):
            Set on a standalone mini-model when it is cut (`mini_model.py`): "minijoint" or "minipost", the way it was
            made; step 2 reads it, and every language pack records it. Absent from mini-models saved by 0.1.0.
        base_fingerprint (`str`, *optional*):
            Set on a standalone mini-model when it is cut: the `base_fingerprint` of the full model it was cut from,
            so that step 2 refuses a mini-model of another base model.

    Example:

    ```python
    >>> from hf_minimodel import MiniModelConfig
    >>> config = MiniModelConfig(num_hidden_layers=12, mini_num_layers=4)
    >>> config.mini_num_layers
    4
    ```
    """

    # XLM-R's own model type: a saved dual model or mini-model is, to stock transformers, the XLM-R masked LM it
    # is laid out as (the dual model's second head aside), so AutoTokenizer, AutoModelForMaskedLM and pipeline()
    # load it with no remote code and no question; `auto_map` names our classes for trust_remote_code=True.
    model_type = "xlm-roberta"

    mini_num_layers: int | None = None
    mini_loss_weight: float | int = 1.0
    mini_num_new_layers: int = 0
    full_num_hidden_layers: int | None = None
    mlm_head_on_labelled_only: bool = True
    # What a cut records (`mini_model.cut_mini_model`); None on a full model, and then not written to config.json.
    mini_method: str | None = None
    base_fingerprint: str | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.mini_num_layers is None:
            depth = self.full_num_hidden_layers or self.num_hidden_layers
            self.mini_num_layers = max(1, depth // 3)
        self.check_mini_model()

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        if config_dict.get("model_type") == LEGACY_MODEL_TYPE:  # an earlier save of this very class: no warning
            config_dict = {**config_dict, "model_type": cls.model_type}
        return config_dict, kwargs

    def to_dict(self) -> dict:
        # A cut's records go into config.json only once a cut has set them: a full model's saved config stays as
        # earlier versions wrote it.
        values = super().to_dict()
        for key in RECORDS:
            if values.get(key) is None:
                values.pop(key, None)
        return values

    @property
    def is_standalone_mini_model(self) -> bool:
        return self.full_num_hidden_layers is not None

    def check_mini_model(self) -> None:
        """Raise a `ValueError` naming the impossible value and the fix.

        `@strict` runs class validators only at construction and wraps their errors; `from_pretrained(...,
        mini_num_layers=k)` sets kwargs after construction. So the models call this again in their `__init__`.
        """
        depth = self.full_num_hidden_layers if self.is_standalone_mini_model else self.num_hidden_layers
        if self.mini_num_layers < 1:
            raise ValueError(f"mini_num_layers={self.mini_num_layers}: the mini-model needs at least 1 layer; use 1..{depth - 1}")
        if self.mini_num_layers >= depth:
            raise ValueError(
                f"mini_num_layers={self.mini_num_layers} is not below the full model's depth ({depth} layers): "
                f"a mini-model is the bottom part of the full model; use 1..{depth - 1}"
            )
        if self.mini_loss_weight < 0:
            raise ValueError(f"mini_loss_weight={self.mini_loss_weight} is negative: use a weight >= 0 (1.0 weighs both heads equally)")
        if self.mini_num_new_layers < 0:
            raise ValueError(f"mini_num_new_layers={self.mini_num_new_layers} is negative: use 0 (MiniJoint) or a few new layers (MiniPost)")
        if self.is_standalone_mini_model and self.num_hidden_layers != self.mini_num_layers + self.mini_num_new_layers:
            raise ValueError(
                f"a standalone mini-model has mini_num_layers + mini_num_new_layers layers "
                f"({self.mini_num_layers} + {self.mini_num_new_layers}), but num_hidden_layers={self.num_hidden_layers}: "
                "build it with MiniModelConfig.for_mini_model(full_config)"
            )

    @classmethod
    def from_base_config(cls, base_config: XLMRobertaConfig, **mini_kwargs) -> "MiniModelConfig":
        """Build from an existing XLM-R configuration, e.g. `AutoConfig.from_pretrained("FacebookAI/xlm-roberta-base")`."""
        values = {key: value for key, value in base_config.to_dict().items() if key not in CLASS_FIELDS}
        values.update(mini_kwargs)
        return cls(**values)

    def for_mini_model(self, num_new_layers: int | None = None) -> "MiniModelConfig":
        """The configuration of this full model's standalone mini-model (its bottom layers plus new ones on top)."""
        if self.is_standalone_mini_model:
            raise ValueError("this configuration already describes a standalone mini-model: call for_mini_model on the full model's config")
        new = self.mini_num_new_layers if num_new_layers is None else num_new_layers
        return MiniModelConfig.from_base_config(
            self,
            num_hidden_layers=self.mini_num_layers + new,
            mini_num_new_layers=new,
            full_num_hidden_layers=self.num_hidden_layers,
        )


# The one answer to "which fields are ours": what MiniModelConfig declares beyond XLMRobertaConfig.
MINI_FIELDS = tuple(field.name for field in dataclasses.fields(MiniModelConfig)
                    if field.name not in {base.name for base in dataclasses.fields(XLMRobertaConfig)})
RECORDS = ("mini_method", "base_fingerprint")  # the fields a cut sets (see MiniModelConfig.to_dict)
# What save_pretrained writes about the class of a model rather than its shape: another class's config drops them.
CLASS_FIELDS = ("model_type", "architectures", "auto_map", "transformers_version")


def is_mini_config(config) -> bool:
    """Whether `config` (a config, of any class, or its dict) is one of ours: it carries a mini-model field. Every
    config this package saves does, and so does a stock `XLMRobertaConfig` loaded from one of our folders (stock
    transformers keeps unknown keys as attributes), which is why the class does not tell."""
    if isinstance(config, dict):
        return any(key in config for key in MINI_FIELDS)
    return any(hasattr(config, key) for key in MINI_FIELDS)


def stock_config(config, **overrides) -> XLMRobertaConfig:
    """A plain `XLMRobertaConfig` with `config`'s values and none of ours (nor the saved class's): what a stock
    class built from one of our models gets, so that its saves name no remote code they do not hold."""
    values = {key: value for key, value in config.to_dict().items() if key not in MINI_FIELDS + CLASS_FIELDS}
    return XLMRobertaConfig(**{**values, **overrides})


__all__ = ["MiniModelConfig", "is_mini_config", "stock_config"]
