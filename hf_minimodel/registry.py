"""`MiniModelConfig` registered with `AutoConfig`, so that a saved dual model or mini-model loads with the Auto
classes (`AutoConfig`, `AutoTokenizer`, which reads the config first) without a remote-code question.

Models are not registered: the dual model and the standalone mini-model share one config class, and `auto_map` in
each saved config already names the right class. The package calls this on first use of any public name, and before
each Auto call of its own; it is idempotent.
"""


def register_auto_classes() -> None:
    from transformers import AutoConfig

    from .configuration_minimodel import MiniModelConfig

    AutoConfig.register(MiniModelConfig.model_type, MiniModelConfig, exist_ok=True)
