"""The three ways to learn a language pack (step 2), by the names every pack, result file and CLI flag records:

- standard: the new embeddings trained over the full model (Artetxe et al., 2020);
- minijoint: over MiniJoint's mini-model, cut from a model pretrained with a second MLM head at a middle layer;
- minipost: over MiniPost's mini-model, the bottom layers of any pretrained model plus new layers trained on top.
"""

METHODS = ("standard", "minijoint", "minipost")
LABELS = {"standard": "standard", "minijoint": "MiniJoint", "minipost": "MiniPost"}
