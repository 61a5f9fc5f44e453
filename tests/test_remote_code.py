"""The saved models load on the Hub's terms: in a process where hf_minimodel cannot be imported at all."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_minimodel import MiniModelAdapter

# The start of every child script: a process in which hf_minimodel cannot be imported, as on a user's machine.
BLOCK_PACKAGE = textwrap.dedent(
    """
    import sys

    class BlockPackage:
        def find_spec(self, name, path=None, target=None):
            if name == "hf_minimodel" or name.startswith("hf_minimodel."):
                raise ImportError("hf_minimodel is blocked in this process")

    sys.meta_path.insert(0, BlockPackage())
    """
)

CHILD = BLOCK_PACKAGE + textwrap.dedent(
    """
    try:
        import hf_minimodel
    except ImportError:
        pass
    else:
        raise SystemExit("the block did not work")

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

    folder, inputs_file, out_file, remote = sys.argv[1:]
    remote = remote == "remote"  # else a stock model, loaded as any Hub checkpoint is, without remote code
    inputs = load_file(inputs_file)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=remote)
    outputs = {"config_class": torch.tensor([type(config).__name__ == "MiniModelConfig"])}
    autos = (("auto_model", AutoModel), ("auto_mlm", AutoModelForMaskedLM)) if remote else (("auto_mlm", AutoModelForMaskedLM),)
    for name, auto in autos:
        model = auto.from_pretrained(folder, trust_remote_code=remote).eval()
        assert "hf_minimodel" not in type(model).__module__, type(model).__module__
        with torch.no_grad():
            out = model(**inputs)
        outputs[name + ".logits"] = out.logits
        if getattr(out, "mini_logits", None) is not None:
            outputs[name + ".mini_logits"] = out.mini_logits
    save_file(outputs, out_file)
    """
)


def load_in_blocked_process(folder, inputs, tmp_path, remote=True):
    """Load `folder` with the Auto classes in a process that cannot import hf_minimodel, and run it on `inputs`:
    `{"config_class": ..., "auto_model.logits": ..., "auto_mlm.logits": ...}` (with `remote=False`, a stock model
    loaded without remote code: `auto_mlm` only)."""
    inputs_file, out_file = tmp_path / "inputs.safetensors", tmp_path / "outputs.safetensors"
    save_file({k: v.contiguous() for k, v in inputs.items()}, inputs_file)
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1")
    # Run from a folder where `import hf_minimodel` cannot find the source tree by accident.
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(inputs_file), str(out_file), "remote" if remote else "stock"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return load_file(out_file)


@pytest.mark.parametrize("which", ["dual", "mini"])
def test_remote_code_round_trip_without_the_package(which, tiny_dual, batch, tmp_path):
    model = tiny_dual if which == "dual" else MiniModelAdapter(tiny_dual).export_mini_model()
    folder = tmp_path / which
    model.save_pretrained(folder)
    assert {"configuration_minimodel.py", "modeling_minimodel.py", "model.safetensors"} <= {p.name for p in folder.iterdir()}
    inputs, _ = batch
    with torch.no_grad():
        expected = model(**inputs)
    got = load_in_blocked_process(folder, inputs, tmp_path)
    assert bool(got["config_class"])
    for name in ("auto_model", "auto_mlm"):
        torch.testing.assert_close(got[name + ".logits"], expected.logits, rtol=0, atol=0)
        if which == "dual":
            torch.testing.assert_close(got[name + ".mini_logits"], expected.mini_logits, rtol=0, atol=0)


@pytest.mark.parametrize("which", ["dual", "mini"])
def test_stock_transformers_loads_what_we_save_as_the_xlm_roberta_it_is(which, tiny_dual, batch, tmp_path):
    """No remote code, no package: the dual model is XLM-R's masked LM plus a second head (dropped, with
    transformers' "unexpected keys" note), a mini-model is a shallow XLM-R masked LM. Same logits, to the bit."""
    model = tiny_dual if which == "dual" else MiniModelAdapter(tiny_dual).export_mini_model()
    model.save_pretrained(tmp_path / which)
    inputs, _ = batch
    with torch.no_grad():
        expected = model(**inputs)
    got = load_in_blocked_process(tmp_path / which, inputs, tmp_path, remote=False)
    assert not bool(got["config_class"])
    torch.testing.assert_close(got["auto_mlm.logits"], expected.logits, rtol=0, atol=0)


LEGACY_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM
    import hf_minimodel

    hf_minimodel.MiniModelConfig  # any public name registers the earlier versions' model type
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    config = AutoConfig.from_pretrained(folder)
    found = {"config": type(config).__name__, "config_module": type(config).__module__}
    for auto in (AutoModel, AutoModelForMaskedLM):
        found[auto.__name__] = type(auto.from_pretrained(folder, trust_remote_code=True)).__name__
    config.save_pretrained(out)
    found["saved"] = json.loads((out / "config.json").read_text())
    print(json.dumps(found))
    """
)


def test_a_folder_saved_by_an_earlier_version_loads_with_remote_code_beside_the_package(tmp_path):
    """With hf_minimodel imported, its registered alias for the earlier model type must not stand in the way of
    trust_remote_code=True (transformers 5.24 prefers a registered config class, then wants the remote model's
    config class to have its name), and what AutoConfig returns saves in today's format."""
    import json
    from pathlib import Path

    folder = Path(__file__).parent / "artifacts" / "v0.1.0" / "dual"
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", LEGACY_CHILD, str(folder), str(tmp_path / "resaved")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert (found["config"], found["config_module"]) == ("MiniModelConfig", "hf_minimodel.configuration_minimodel")
    assert found["AutoModel"] == found["AutoModelForMaskedLM"] == "XLMRobertaForDualMLM"
    assert found["saved"]["model_type"] == "xlm-roberta"
    assert found["saved"]["auto_map"]["AutoConfig"] == "configuration_minimodel.MiniModelConfig"
    assert not (tmp_path / "resaved" / "registry.py").exists()


def test_remote_code_files_import_only_torch_transformers_and_each_other():
    import ast
    from pathlib import Path

    import hf_minimodel

    package = Path(hf_minimodel.__file__).parent
    for name in ("configuration_minimodel.py", "modeling_minimodel.py"):
        tree = ast.parse((package / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level:
                # Only the other remote-code file travels with this one.
                assert node.module == "configuration_minimodel", (name, node.module)
                continue
            elif isinstance(node, ast.ImportFrom):
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= {"torch", "transformers", "dataclasses"}, (name, roots)


def test_remote_code_files_use_no_private_transformers_name():
    """Remote code runs under whatever transformers the user has: a private name is a promise nobody made (5.24
    renamed an argument of `XLMRobertaModel._create_attention_masks`, and every saved model broke)."""
    import ast
    from pathlib import Path

    import hf_minimodel

    # Class attributes transformers documents for subclasses to set, and our own module's names.
    allowed = {"_tied_weights_keys", "_no_split_modules", "_keys_to_ignore_on_load_missing", "_LoadsWithAutoModel",
               "_register_auto_classes"}
    package = Path(hf_minimodel.__file__).parent
    for name in ("configuration_minimodel.py", "modeling_minimodel.py"):
        tree = ast.parse((package / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                # self._x too: a private method inherited from XLMRobertaModel is just as private.
                assert node.attr in allowed, f"{name}:{node.lineno} uses .{node.attr}"
            if isinstance(node, ast.ImportFrom) and not node.level:
                private = [alias.name for alias in node.names if alias.name.startswith("_")]
                assert not private and not any(part.startswith("_") for part in node.module.split(".")), (name, node.module, private)


TOKENIZER_CHILD = BLOCK_PACKAGE + textwrap.dedent(
    """
    import builtins, json
    questions = []

    def no_terminal(prompt=""):  # transformers asks "Do you wish to run the custom code?" through input()
        questions.append(prompt)
        raise EOFError

    builtins.input = no_terminal
    from transformers import AutoTokenizer

    results = {}
    for name, kwargs in json.loads(sys.argv[1]):
        before = len(questions)
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
        results[name + json.dumps(kwargs)] = {"asked": len(questions) > before, "vocab": tokenizer.get_vocab()}
    print(json.dumps(results))
    """
)


def test_auto_tokenizer_loads_every_saved_folder_without_a_remote_code_question(tiny_dual, tmp_path):
    """Plain `AutoTokenizer.from_pretrained`, without hf-minimodel imported, on every folder we save. transformers
    (5.4 to 5.24) reads config.json through AutoConfig before tokenizer_config.json; our dual model's and
    mini-model's configs declare XLM-R's model type, so it finds local code and asks nothing, although `auto_map`
    names remote code. (Under a model type of their own, as earlier versions saved, it asked.)"""
    import json

    from hf_minimodel import LanguagePack
    from hf_minimodel.merge import merge_embeddings, save_merged_model, to_stock_masked_lm

    from test_merge import make_target_tokenizer, target_embeddings

    tokenizer = make_target_tokenizer()
    tiny_dual.save_pretrained(tmp_path / "dual")
    tokenizer.save_pretrained(tmp_path / "dual")  # as `minimodel pretrain` saves
    MiniModelAdapter(tiny_dual).export_mini_model().save_pretrained(tmp_path / "mini")
    tokenizer.save_pretrained(tmp_path / "mini")
    embeddings, bias = target_embeddings(tokenizer)
    LanguagePack(tokenizer, embeddings, bias, {}).save_pretrained(tmp_path / "pack")
    merged = merge_embeddings(to_stock_masked_lm(tiny_dual), embeddings, tokenizer, bias)
    save_merged_model(merged, tokenizer, tmp_path / "merged")

    loads = [("merged", {}), ("pack", {}), ("dual", {}), ("mini", {}), ("dual", {"trust_remote_code": True})]
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", TOKENIZER_CHILD, json.dumps(loads)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    for name, kwargs in loads:
        got = results[name + json.dumps(kwargs)]
        assert got["vocab"] == tokenizer.get_vocab(), name
        assert not got["asked"], (name, kwargs)
