"""hf-minimodel: teach a pretrained XLM-R style encoder a new language cheaply, by mini-model adaptation
(Marchisio, Lewis, Chen, Artetxe, "Mini-Model Adaptation", Findings of ACL 2023)."""

from transformers import AutoConfig

from .adapter import MiniModelAdapter
from .configuration_minimodel import MiniModelConfig
from .modeling_minimodel import DualMaskedLMOutput, MiniModelForMaskedLM, XLMRobertaForDualMLM

# With the package imported, AutoConfig knows the model type without remote code. Models are not registered: the
# dual model and the standalone mini-model share one config class, and `auto_map` in each saved config already
# names the right class.
AutoConfig.register(MiniModelConfig.model_type, MiniModelConfig, exist_ok=True)

__all__ = [
    "DualMaskedLMOutput",
    "MiniModelAdapter",
    "MiniModelConfig",
    "MiniModelForMaskedLM",
    "XLMRobertaForDualMLM",
]
__version__ = "0.1.0"
