"""The three ways to learn a language pack (step 2), by the names every pack, result file and CLI flag records:

- standard: the new embeddings trained over the full model (Artetxe et al., 2020);
- minijoint: over MiniJoint's mini-model, cut from a model pretrained with a second MLM head at a middle layer;
- minipost: over MiniPost's mini-model, the bottom layers of any pretrained model plus new layers trained on top.
"""

METHODS = ("standard", "minijoint", "minipost")
LABELS = {"standard": "standard", "minijoint": "MiniJoint", "minipost": "MiniPost"}

# Step 2's starting rows, by the names packs record and `--init` offers (`initialisation` says what each does); here,
# with no torch, so that `minimodel --help` lists them without importing it.
INITS = ("random-paper", "random", "mean", "overlap", "anchored", "compose", "focus", "focus-compose")
# The default: shared tokens copied, spellable ones composed (FVT). The closest start that needs no optional package,
# and the best measured after step 2 (README, "Step 2 learns").
DEFAULT_INIT = "compose"
# The inits that read the source tokenizer (shared and spellable tokens); `random` and `mean` read it if given
# (per-script statistics); `random-paper` never does.
NEEDS_SOURCE_TOKENIZER = ("overlap", "anchored", "compose", "focus", "focus-compose")
# The inits that train fastText vectors on the target text (the optional extra).
NEEDS_CORPUS = ("focus", "focus-compose")
