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

# Public name -> the module that defines it, in the order of the paper's steps. One path per step: functions for
# steps 1, 3 and 4, `MiniModelAdapter`'s methods for what happens around one full model (MiniJoint's export, MiniPost's
# step 1b, step 2 and the merge; the functions behind them, in `mini_model` and `target_embeddings`, are what those
# methods call). Each public function's result type is public too.
_EXPORTS = {
    # the models (remote code)
    "MiniModelConfig": "configuration_minimodel",
    "XLMRobertaForDualMLM": "modeling_minimodel",
    "MiniModelForMaskedLM": "modeling_minimodel",
    "DualMaskedLMOutput": "modeling_minimodel",  # what XLMRobertaForDualMLM returns
    # step 1 (plain, or MiniJoint with XLMRobertaForDualMLM)
    "source_config": "pretraining",
    "pretrain_mlm": "pretraining",
    "TrainingReport": "training",  # what a training step cost and how it went
    # the mini-model, step 2 and the merge, around one full model
    "MiniModelAdapter": "adapter",
    "train_target_tokenizer": "tokenizer",
    "LearningCurve": "target_embeddings",  # language packs taken along step 2, with their cost
    "compare_inits": "target_embeddings",  # each init's start, measured before any training
    # the language pack, and the merged model
    "LanguagePack": "language_pack",
    "PackMetadata": "pack_metadata",
    "save_merged_model": "merge",
    # steps 3 and 4, and evaluation
    "load_task": "tasks",
    "load_task_model": "transfer",
    "finetune": "transfer",
    "evaluate_zero_shot": "transfer",
    "evaluate_retrieval": "transfer",
    "sentence_embeddings": "pooling",  # sentence vectors as e5 and sentence-transformers make them
    "ZeroShotEvaluation": "transfer",  # step 4 over several language packs
    "heldout_mlm_loss": "training",
    "held_then_decayed": "training",  # a rate schedule for step 2: held after warm-up, then decayed (**kwargs)
    # data, real pretrained bodies in XLM-R layout (offline), errors
    "load_text_dataset": "corpus",
    "e5_small": "e5",
    "all_minilm_l6": "minilm",  # the paper's English-only setting
    "InputError": "checks",  # bad input of any kind; CorpusError and the other errors of the user's are InputErrors
}

# Modules that are part of the API as modules, for recipes of your own: `freezing` (what each step trains),
# `initialisation` (step 2's starting rows), `speedup` (the paper's compute-to-accuracy measure), `tasks` (load_task's
# tasks, the aligned Bible, XNLI/PAWS-X/MLQA, metrics), `methods` (the methods' and inits' names), `saving` (atomic
# folders, `save_trained`), `flops` (what a step costs), `mini_model` (the one cut of a mini-model, MiniJoint's
# export, MiniPost's build), `training` (the Trainer machinery every step shares), `sample` (the shipped
# public-domain text) and `convert` (BERT-layout encoders to XLM-R).
_SUBMODULES = ("freezing", "initialisation", "speedup", "tasks", "methods", "saving", "flops", "mini_model", "training",
               "sample", "convert")

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
    from .corpus import load_text_dataset
    from .e5 import e5_small
    from .language_pack import LanguagePack
    from .merge import save_merged_model
    from .minilm import all_minilm_l6
    from .modeling_minimodel import DualMaskedLMOutput, MiniModelForMaskedLM, XLMRobertaForDualMLM
    from .pack_metadata import PackMetadata
    from .pooling import sentence_embeddings
    from .pretraining import pretrain_mlm, source_config
    from .target_embeddings import LearningCurve, compare_inits
    from .tasks import load_task
    from .tokenizer import train_target_tokenizer
    from .training import TrainingReport, held_then_decayed, heldout_mlm_loss
    from .transfer import ZeroShotEvaluation, evaluate_retrieval, evaluate_zero_shot, finetune, load_task_model
