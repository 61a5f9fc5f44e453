"""Step-1 sweep on the real body (how the benchmark's step-1 rates were chosen, on English and French only): continued
plain MLM from multilingual-e5-small, the new MLM head at HEAD_LR and the pretrained body at BODY_LR, 8 x 64 tokens.
Reports the final MLM loss and English->French retrieval@1 among 1000 held-out verses with the model's own vocabulary:
whether continued MLM keeps e5's sentence geometry.

    python benchmarks/step1_sweep.py 1e-3 1e-5 300      # HEAD_LR BODY_LR STEPS (BODY_LR "same": one rate for all;
                                                        # it must be above 0: the body always trains in step 1)

Writes runs/step1-sweep/h{HEAD_LR}-b{BODY_LR}-{STEPS}.json.
"""

import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, XLMRobertaForMaskedLM

from hf_minimodel import e5_small, evaluate_retrieval, pretrain_mlm
from hf_minimodel.tasks.bible_tasks import language_texts, retrieval_task

def retrieval(model, tokenizer, probe) -> float:
    # e5's own vocabulary on both sides: queries and pool embedded by the model as it is (in eval mode, as always).
    return round(evaluate_retrieval(model, tokenizer, probe, tokenizer=tokenizer, max_seq_length=128)["retrieval_at_1"], 3)


def main(head_lr: str, body_lr: str, steps: str) -> None:
    out = Path(f"runs/step1-sweep/h{head_lr}-b{body_lr}-{steps}")
    init = str(e5_small())
    tokenizer = AutoTokenizer.from_pretrained(init)
    probe = retrieval_task("k", "l", "test", num_candidates=1000, seed=0)
    torch.manual_seed(0)
    model = XLMRobertaForMaskedLM.from_pretrained(init)
    started = time.time()
    report = pretrain_mlm(model, tokenizer, language_texts("en"), out / "ckpt", max_steps=int(steps), learning_rate=float(head_lr),
                          body_learning_rate=None if body_lr == "same" else float(body_lr), batch_size=8,
                          weight_decay=0.01, seed=0, max_seq_length=64, train_word_embeddings=False)
    result = {"head_lr": float(head_lr), "body_lr": None if body_lr == "same" else float(body_lr), "steps": int(steps),
              "final_loss": report.final_loss, "seconds": round(time.time() - started),
              "retrieval_at_1": retrieval(model, tokenizer, probe)}
    out.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{out.name}.json").write_text(json.dumps(result) + "\n")  # not with_suffix: rates hold dots
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
