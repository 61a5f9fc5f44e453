"""Every default that the library, the CLI and the demo share, written once: each step's budget, the batch and
sequence sizes, the target vocabulary's size, the one shape of a new (toy) source model, and the folder where built
models are cached. Importable without torch, so the CLI can show them in its help."""

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Budget:
    """A training step's default budget: optimizer steps and peak learning rate."""

    steps: int
    learning_rate: float


STEP1 = Budget(10_000, 5e-4)  # pretraining a source model (`pretrain_mlm`)
STEP1B = Budget(1000, 5e-4)  # MiniPost's step 1b: small next to step 1, and shared by every target language
STEP2 = Budget(1000, 1e-3)  # the target embeddings
STEP3 = Budget(1000, 5e-5)  # the task model

BATCH_SIZE = 32  # sequences (examples, for step 3) per optimizer step and process
# Tokens per sequence when none is asked for: this many, or what the model's position table holds if that is fewer
# (`xlmr.sequence_length`, the one policy); a new source model's position table is made this long.
MAX_SEQ_LENGTH = 128
# The share of tokens masked language modelling masks (BERT's). Step 2 may train at another (`run_mlm_training`'s
# `mlm_probability`); held-out losses always mask this one, so runs trained at different shares stay comparable.
MLM_PROBABILITY = 0.15
TARGET_VOCAB_SIZE = 8000  # pieces of a new target tokenizer, the 5 special tokens included
RETRIEVAL_CANDIDATES = 1000  # bible-retrieval in step 4: verses to find each translation among
MINIPOST_NEW_LAYERS = 1  # MiniPost's new layers on top of the extracted ones (`mini_model.build_minipost` says why)


@dataclass(frozen=True)
class SourceShape:
    """XLM-R's proportions at a size that pretrains on two CPU cores: feed-forward 4x the hidden size, and 64-wide
    attention heads as XLM-R's, but never fewer than 4 (at a hidden size of 128, 64-wide heads would leave two)."""

    hidden_size: int = 128
    num_layers: int = 6
    head_size: int = 64
    min_heads: int = 4
    feed_forward_ratio: int = 4

    def num_heads(self, hidden_size: int) -> int:
        """128 -> 4, 256 -> 4, 768 -> 12 (XLM-R base), 1024 -> 16 (large); always a divisor of `hidden_size`."""
        heads = min(hidden_size, max(self.min_heads, hidden_size // self.head_size))
        while hidden_size % heads:
            heads -= 1
        return heads

    def intermediate_size(self, hidden_size: int) -> int:
        return self.feed_forward_ratio * hidden_size


TOY_SOURCE = SourceShape()


def cache_dir() -> Path:
    """Where hf-minimodel keeps what it builds once and reuses (the demo's step-1 model, e5-small, MiniLM):
    `$HF_MINIMODEL_CACHE`, else `~/.cache/hf_minimodel`."""
    return Path(os.environ.get("HF_MINIMODEL_CACHE", Path.home() / ".cache" / "hf_minimodel"))
