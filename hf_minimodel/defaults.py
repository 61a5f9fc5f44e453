"""The one shape of a new (toy) source model, for step 1 from scratch: the library's, the CLI's and the demo's
defaults all come from here, with the folder where built models are cached. Importable without torch, so the CLI
can show them in its help."""

import os
from dataclasses import dataclass
from pathlib import Path


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
