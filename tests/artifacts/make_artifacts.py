"""Make the saved artifacts that `tests/test_saved_artifacts.py` loads on every transformers version CI tries.

They are what users already have on disk and on the Hub: a MiniJoint dual model and its mini-model (both carrying
the remote-code files as they were on the day they were saved), a language pack from a real (tiny) step 2, and the
merged stock model, with the logits they gave when they were made. Once committed they are never regenerated for a
release that still claims to load them: a new version of this package or of transformers must reproduce these
logits, not new ones. To add a generation, run this script into a new folder named for the package version:

    .venv/bin/python tests/artifacts/make_artifacts.py tests/artifacts/v0.1.0
"""

import gzip
import json
import shutil
import sys
from importlib.resources import files
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file

from hf_minimodel import (
    MiniModelAdapter,
    MiniModelConfig,
    XLMRobertaForDualMLM,
    __version__,
    save_merged_model,
    train_target_embeddings,
    train_target_tokenizer,
)

# Small enough to commit (a few hundred KB in all), deep enough that the mini-model is a real cut of the full one.
GEOMETRY = dict(vocab_size=96, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48,
                max_position_embeddings=40)
# A sentence the target tokenizer must keep splitting the same way, in the shipped public-domain Russian sample.
TARGET_TEXT = "В начале сотворил Бог небо и землю."


def target_lines(count: int) -> list[str]:
    with gzip.open(files("hf_minimodel.data") / "ru-synodal.train.txt.gz", "rt", encoding="utf-8") as f:
        return [line.strip() for line, _ in zip(f, range(count)) if line.strip()]


def main(folder: Path) -> None:
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    dual = XLMRobertaForDualMLM(MiniModelConfig(**GEOMETRY, mini_num_layers=1)).eval()
    mini = MiniModelAdapter(dual).export_mini_model().eval()
    dual.save_pretrained(folder / "dual")
    mini.save_pretrained(folder / "mini")

    tokenizer = train_target_tokenizer(target_lines(300), vocab_size=120, show_progress=False)
    pack = train_target_embeddings(mini, tokenizer, target_lines(300), folder / "step2", init="random", language="ru",
                                   base_model="tiny-random-dual", max_steps=3, batch_size=4, max_seq_length=32,
                                   disable_tqdm=True)
    pack.save_pretrained(folder / "pack")
    merged = MiniModelAdapter(dual).merge(pack).eval()
    save_merged_model(merged, tokenizer, folder / "merged")
    shutil.rmtree(folder / "step2", ignore_errors=True)  # step 2's Trainer output, not an artifact

    generator = torch.Generator().manual_seed(1)
    source_ids = torch.randint(4, GEOMETRY["vocab_size"], (2, 10), generator=generator)
    source_ids[:, 0], source_ids[:, -1] = 0, 2
    source_mask = torch.ones_like(source_ids)
    source_mask[1, 7:], source_ids[1, 7:] = 0, 1
    target = tokenizer([TARGET_TEXT, TARGET_TEXT.lower()], padding=True, return_tensors="pt")
    with torch.no_grad():
        dual_out = dual(input_ids=source_ids, attention_mask=source_mask)
        mini_out = mini(input_ids=source_ids, attention_mask=source_mask)
        merged_out = merged(input_ids=target["input_ids"], attention_mask=target["attention_mask"])
    save_file(
        {
            "source_input_ids": source_ids,
            "source_attention_mask": source_mask,
            "target_input_ids": target["input_ids"],
            "target_attention_mask": target["attention_mask"],
            "dual_logits": dual_out.logits,
            "dual_mini_logits": dual_out.mini_logits,
            "mini_logits": mini_out.logits,
            "merged_logits": merged_out.logits,
        },
        folder / "expected.safetensors",
    )
    (folder / "made_with.json").write_text(json.dumps(
        {"hf_minimodel": __version__, "transformers": transformers.__version__, "torch": torch.__version__,
         "target_text": TARGET_TEXT}, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} NEW_FOLDER (e.g. tests/artifacts/v{__version__})")
    main(Path(sys.argv[1]))
