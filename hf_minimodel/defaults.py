"""The one shape of a new (toy) source model, for step 1 from scratch: the library's, the CLI's and the demo's
defaults all come from here. Importable without torch, so the CLI can show them in its help."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceShape:
    """XLM-R's proportions at a size that pretrains on two CPU cores: feed-forward 4x the hidden size, and 32-wide
    attention heads (XLM-R's are 64 wide; at a hidden size of 128 that would leave two heads)."""

    hidden_size: int = 128
    num_layers: int = 6
    head_size: int = 32
    feed_forward_ratio: int = 4

    def num_heads(self, hidden_size: int) -> int:
        return max(1, hidden_size // self.head_size)

    def intermediate_size(self, hidden_size: int) -> int:
        return self.feed_forward_ratio * hidden_size


TOY_SOURCE = SourceShape()
