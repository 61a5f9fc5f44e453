"""Step-1 sweep on the real body (how the benchmark's step-1 rates were chosen, on English and French only): continued
plain MLM from multilingual-e5-small, the new MLM head at HEAD_LR and the pretrained body at BODY_LR, 8 x 64 tokens.
Reports the final MLM loss and English->French retrieval@1 among 1000 held-out verses with the model's own vocabulary:
whether continued MLM keeps e5's sentence geometry.

    python benchmarks/step1_sweep.py 1e-3 1e-5 300      # HEAD_LR BODY_LR STEPS (BODY_LR "same": one rate for all)

Writes runs/step1-sweep/h{HEAD_LR}-b{BODY_LR}-{STEPS}.json.
"""
import json, sys, time, torch
from pathlib import Path
from transformers import AutoTokenizer, XLMRobertaForMaskedLM
from hf_minimodel import e5_small, pretrain_mlm
from hf_minimodel.bible import verses_for
from hf_minimodel.bible_tasks import retrieval_task, retrieval_accuracy
from hf_minimodel.transfer import sentence_embeddings
sys.path.insert(0, "benchmarks")
from reproduce import texts, ENGLISH
head_lr, body_lr, steps = float(sys.argv[1]), (None if sys.argv[2] == "same" else float(sys.argv[2])), int(sys.argv[3])
out = Path(f"runs/step1-sweep/h{sys.argv[1]}-b{sys.argv[2]}-{steps}")
init = str(e5_small())
tok = AutoTokenizer.from_pretrained(init)
probe = retrieval_task("k", "l", "test", num_candidates=1000, seed=0)
def retrieval(model):
    model.eval()
    q = sentence_embeddings(model, tok, probe.queries, max_seq_length=128)
    p = sentence_embeddings(model, tok, probe.pool, max_seq_length=128)
    model.train()
    return round(retrieval_accuracy(q, p, probe.gold), 3)
torch.manual_seed(0)
model = XLMRobertaForMaskedLM.from_pretrained(init)
result = {"head_lr": head_lr, "body_lr": body_lr, "steps": steps}
if body_lr == 0.0:
    model.roberta.requires_grad_(False)
    for p in model.lm_head.parameters(): p.requires_grad_(True)
    model.get_input_embeddings().requires_grad_(False)
    from hf_minimodel.training import run_mlm_training, mlm_blocks
    started = time.time()
    report = run_mlm_training(model, tok, mlm_blocks(texts(ENGLISH), tok, 64), out / "ckpt", max_steps=steps, learning_rate=head_lr,
                              batch_size=8, weight_decay=0.01, seed=0)
else:
    started = time.time()
    report = pretrain_mlm(model, tok, texts(ENGLISH), out / "ckpt", max_steps=steps, learning_rate=head_lr, body_learning_rate=body_lr,
                          batch_size=8, weight_decay=0.01, seed=0, max_seq_length=64, train_word_embeddings=False)
result.update(final_loss=report.final_loss, seconds=round(time.time() - started), retrieval_at_1=retrieval(model))
print(json.dumps(result), flush=True)
(out.parent / f"{out.name}.json").write_text(json.dumps(result))
