"""Sentence embeddings as multilingual-e5 and sentence-transformers compute them: the last layer's states averaged
over real tokens, L2-normalised (`sentence_embeddings`, step 4's retrieval), and the files that tell
sentence-transformers to load a merged model so (`write_sentence_transformers_files`, `save_merged_model`).
"""

import json
from pathlib import Path

import torch

from .xlmr import max_sequence_length, xlmr_body


@torch.no_grad()
def sentence_embeddings(model, tokenizer, texts: list[str], *, batch_size: int = 64, max_seq_length: int | None = 128,
                        prefix: str = "") -> torch.Tensor:
    """One L2-normalised vector per text, `(len(texts), hidden_size)` float32 on the CPU: the last layer's states
    mean-pooled over real (non-pad) tokens, as sentence-embedding models such as multilingual-e5 are used (e5 also
    prepends "query: " or "passage: "). `max_seq_length=None` cuts at the tokenizer's `model_max_length`.

    `model` is any XLM-R model class (a masked LM, a merged model, a task model: only its body runs); it runs in
    eval mode and is left in the mode it was in.
    """
    body = xlmr_body(model)
    device = next(body.parameters()).device
    was_training = body.training
    body.eval()
    # Batches of similar lengths: padding is compute spent on nothing, and verses vary from 5 to 100 tokens.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = torch.empty(len(texts), body.config.hidden_size)
    try:
        for start in range(0, len(texts), batch_size):
            chosen = order[start:start + batch_size]
            batch = tokenizer([prefix + texts[i] for i in chosen], padding=True, truncation=True,
                              max_length=max_seq_length, return_tensors="pt").to(device)
            states = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            vectors[chosen] = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1).to("cpu", torch.float32)
    finally:
        body.train(was_training)
    return vectors


def write_sentence_transformers_files(folder: Path, config, prompts: dict) -> None:
    """The files `SentenceTransformer(folder)` reads, by hand so that sentence-transformers is no dependency: the
    classic layout that the Hub's intfloat/multilingual-e5-small carries (Transformer, mean Pooling, Normalize),
    plus the prompts. sentence-transformers 6.2 saves a newer layout but loads this one (tests/test_merge.py)."""
    def write(name, value):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")

    write("modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    write("sentence_bert_config.json", {"max_seq_length": max_sequence_length(config),  # 512 for e5
                                        "do_lower_case": False})
    write("1_Pooling/config.json", {
        "word_embedding_dimension": config.hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,  # over the attention mask: every real token, prompt and <s>, </s> included
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    })
    write("config_sentence_transformers.json", {"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "cosine"})


__all__ = ["sentence_embeddings", "write_sentence_transformers_files"]
