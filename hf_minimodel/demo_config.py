"""The demo's settings (`minimodel demo`): every knob in one dataclass, with the presets for the toy body and the real
multilingual-e5-small. Kept apart from the recipe (`demo.py`) so that the CLI can show the defaults in its help
without importing torch."""

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

from .checks import InputError
from .defaults import BATCH_SIZE, MAX_SEQ_LENGTH, TARGET_VOCAB_SIZE, TOY_SOURCE, cache_dir
from .methods import DEFAULT_INIT, METHODS

SOURCES = ("toy", "e5-small")
DEFAULT_SOURCE = "e5-small"  # `minimodel demo`'s body: the real one, since step 2 ends above its start there in budget
# The target languages shipped as samples (hf_minimodel/data), by sample name; English is the source.
TARGETS = ("ru-synodal", "fr-segond")
# The e5 demo's step-2 init: the closest start the benchmark measured, in each of its five languages (README, "Step 2
# learns": FOCUS, then FVT for the tokens FOCUS leaves). It trains fastText with the optional extra's gensim, which
# `.ci/setup` installs; where gensim is missing the demo starts from `compose`, the closest that needs nothing optional.
BEST_INIT = "focus-compose"


def e5_demo_init() -> str:
    """`BEST_INIT` where its optional extra is installed, else the library's default (`compose`)."""
    return BEST_INIT if importlib.util.find_spec("gensim") is not None else DEFAULT_INIT


@dataclass
class DemoConfig:
    """Every knob of the demo in one place. The defaults are the toy body's (about six minutes on 2 CPU cores, step 1
    included); `DemoConfig.preset("e5-small")` gives the real body's, which `minimodel demo` runs unless told
    `--source toy`."""

    base: str = "toy"  # "toy": a source model pretrained here from scratch; "e5-small": the real one, continued
    source: str = "en-kjv.train"
    target: str = "ru-synodal.train"
    target_test: str = "ru-synodal.test"
    language: str = "ru"
    # The source model: XLM-R's shape at a toy size; the mini-model is its bottom third, as at base geometry.
    vocab_size: int = TARGET_VOCAB_SIZE
    hidden_size: int = TOY_SOURCE.hidden_size
    num_layers: int = TOY_SOURCE.num_layers
    num_heads: int = TOY_SOURCE.num_heads(TOY_SOURCE.hidden_size)
    intermediate_size: int = TOY_SOURCE.intermediate_size(TOY_SOURCE.hidden_size)
    mini_num_layers: int = 2
    max_seq_length: int = MAX_SEQ_LENGTH
    batch_size: int = BATCH_SIZE
    source_steps: int = 400
    source_learning_rate: float = 1e-3
    source_body_learning_rate: float | None = None  # a pretrained body's own, lower rate (pretrain_mlm says why)
    minipost_steps: int = 150
    minipost_learning_rate: float = 1e-3
    step2_steps: int = 300
    step2_learning_rate: float = 3e-3
    init: str = DEFAULT_INIT
    methods: tuple = METHODS
    seed: int = 0
    cache_dir: Path = field(default_factory=cache_dir)

    @classmethod
    def preset(cls, base: str = "toy", **overrides) -> "DemoConfig":
        """The demo's settings for a source body: "toy" (the dataclass's defaults) or "e5-small" (what `minimodel
        demo` runs), sized to fit 15 minutes on 2 CPU cores (691 s measured from `compose`; 1,518 s from
        `focus-compose` on a machine 2.1x slower at step 1, README "The demo"): step 1 continues e5 for 250 steps of
        16 x 64 tokens as MiniJoint's dual model (head after layer 4 of 12, the vocabulary kept), step 2 runs 250
        steps of the same batches. A shorter step 1 (150 steps of 8 x 64) left a head too weak for step 2 to keep
        `compose`'s start (retrieval -0.013 to -0.028); at these sizes every method ends above it (README, "The
        demo"). The new heads train at 1e-3 and the body at 1e-5, the rates the benchmark's step-1 sweep chose on
        French (`benchmarks/step1_sweep.py`: they kept e5's own en->fr retrieval at 0.971; one rate of 1e-4 for all
        left 0.727). Its init is `e5_demo_init()`'s; the toy keeps the library's default."""
        if base not in SOURCES:
            raise InputError(f"unknown demo source {base!r}: choose from {', '.join(SOURCES)}")
        real = dict(base=base, mini_num_layers=4, max_seq_length=64, batch_size=16, source_steps=250,
                    source_learning_rate=1e-3, source_body_learning_rate=1e-5, minipost_steps=100,
                    minipost_learning_rate=1e-4, step2_steps=250, step2_learning_rate=1e-3, init=e5_demo_init())
        return cls(**((real if base == "e5-small" else {}) | overrides))

    def source_key(self) -> str:
        """Names the cached source model after everything that shapes it, so a changed recipe builds a new one."""
        fields = ("source", "vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "mini_num_layers",
                  "max_seq_length", "batch_size", "source_steps", "source_learning_rate", "seed")
        if self.base != "toy":  # the toy's key is unchanged, so caches made before `base` existed stay valid
            fields += ("base", "source_body_learning_rate")
        recipe = json.dumps({name: getattr(self, name) for name in fields}, sort_keys=True)
        return "demo-source-" + hashlib.sha256(recipe.encode()).hexdigest()[:12]
