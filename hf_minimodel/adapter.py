"""`MiniModelAdapter`: mini-model adaptation around one full model, the design card's one object.

The paper's steps as methods on the model being adapted, each a thin call into the module that owns it: get its
mini-model (`mini_model.py`: MiniJoint's export or MiniPost's build, step 1b), learn target-language embeddings
over it (`target_embeddings.py`, step 2), and put them back into the full model (`merge.py`). These methods are the
public path for those steps (the package exports the adapter, not the functions behind it): what they add is the
full model, held once, which step 2 checks a mini-model's base against and copies for the standard approach, and
which the merge copies.
"""

import copy

from torch import nn

from .checks import WrongModelError
from .hub import check_pretrained
from .merge import to_stock_masked_lm
from .xlmr import base_fingerprint, check_same_base
from .mini_model import build_minipost, export_minijoint
from .modeling_minimodel import MiniModelForMaskedLM, XLMRobertaForDualMLM
from .registry import holds_mini_model
from .target_embeddings import train_target_embeddings


def load_full_model(path_or_repo_id, **kwargs):
    """A full model from a folder or Hub id: MiniJoint's `XLMRobertaForDualMLM` if that is what was saved (its
    config has the mini-model fields), else whatever masked LM `AutoModelForMaskedLM` finds there."""
    from transformers import AutoModelForMaskedLM

    if not kwargs.get("local_files_only"):
        check_pretrained(path_or_repo_id, token=kwargs.get("token"))
    hub = {key: kwargs[key] for key in ("token", "revision", "local_files_only", "cache_dir") if key in kwargs}
    if holds_mini_model(path_or_repo_id, **hub):
        return XLMRobertaForDualMLM.from_pretrained(path_or_repo_id, **kwargs)
    return AutoModelForMaskedLM.from_pretrained(path_or_repo_id, **kwargs)


class MiniModelAdapter:
    """Adapts one full model to a new language through its mini-model.

    Args:
        model: the full model. `XLMRobertaForDualMLM` (MiniJoint) carries its own mini-model; any XLM-R masked LM
            can get one with MiniPost.
    """

    def __init__(self, model: nn.Module):
        if not hasattr(model, "roberta"):
            raise WrongModelError(f"{type(model).__name__} is not an XLM-R model (no .roberta): pass an XLM-R masked LM or XLMRobertaForDualMLM")
        self.model = model

    def export_mini_model(self) -> MiniModelForMaskedLM:
        """MiniJoint's mini-model as a standalone `MiniModelForMaskedLM` (`mini_model.export_minijoint`)."""
        return export_minijoint(self.model)

    def build_minipost(self, tokenizer, train_data, output_dir, **minipost_kwargs) -> MiniModelForMaskedLM:
        """MiniPost (step 1b) on the adapter's model: see `mini_model.build_minipost` for the options and their
        defaults. What the run cost (steps, tokens, FLOPs, seconds) stays on the adapter as `minipost_report`."""
        mini, self.minipost_report = build_minipost(self.model, tokenizer, train_data, output_dir, **minipost_kwargs)
        return mini

    def full_masked_lm(self):
        """A copy of the full model as a stock `XLMRobertaForMaskedLM` (MiniJoint's secondary head dropped): what the
        standard approach trains and what merged models are saved as, loadable without remote code. Always a new
        model, so callers may change it in place."""
        stock = to_stock_masked_lm(self.model)
        return copy.deepcopy(stock) if stock is self.model else stock

    def train_embeddings(self, target_tokenizer, train_data, output_dir, *, mini_model=None, check_base: bool = True,
                         **step2_kwargs):
        """Step 2: learn target embeddings over `mini_model` (MiniJoint's export or MiniPost's build), or, with no
        mini-model, over the full model (the standard approach). Returns a `LanguagePack`; see
        `train_target_embeddings` for the options (init, budget, language, source_tokenizer...).

        With `check_base`, a mini-model must have been cut from this model's base (`xlmr.check_same_base` on the
        fingerprint its cut recorded, or on its own embedding layer for one saved before that was recorded): a
        pack trained over another base's mini-model would not fit the model it is merged into."""
        if mini_model is not None and check_base:
            recorded = getattr(mini_model.config, "base_fingerprint", None) or base_fingerprint(mini_model)
            check_same_base(base_fingerprint(self.model), recorded, "the mini-model", getattr(mini_model.config, "name_or_path", None))
        model = mini_model if mini_model is not None else self.full_masked_lm()
        return train_target_embeddings(model, target_tokenizer, train_data, output_dir, **step2_kwargs)

    def merge(self, pack, check_base: bool = True):
        """The full model with the pack's target embeddings in place of its own, as a new stock masked LM (the
        adapter's model is left as it is). Save it with `save_merged_model`."""
        return pack.apply(self.full_masked_lm(), check_base=check_base)
