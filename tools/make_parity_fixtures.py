#!/usr/bin/env python3
"""Reference fixtures for rewardgen's C++ models, computed with the real diffusers / transformers code.

  /usr/bin/python3 tools/make_parity_fixtures.py --src /tmp/refsrc --out tests/data/parity

--src holds sources extracted from git (never committed here; see tests/data/parity/README.md):
  <src>/src/diffusers       diffusers v0.30.3   (git archive v0.30.3 src/diffusers)
  <src>/tf/src/transformers transformers 8366b5724103b10e1dcd8755d2ed6defff435fbb (4.42.0.dev0)
Debian 12's torch 1.13 is the reference; missing third-party packages (huggingface_hub, safetensors,
tokenizers) are import-plumbing stubs from tools/parity_stubs. Per case <out>/<case>/ gets config.json,
the perturbed fp32 weights (diffusion_pytorch_model.safetensors or model.safetensors), inputs.safetensors
and outputs.safetensors. Afterwards every case is rebuilt from the written files alone (config.json ->
fresh model, weights loaded with strict=True through tools/safetensors_py.py) and must reproduce the
written outputs bit for bit.
"""
import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent


def setup_paths(src):
    src = Path(src)
    # the stubbed hub cache path: transformers/diffusers write a version marker there on import
    cache = tempfile.mkdtemp(prefix="parity_stub_cache_")
    os.environ["PARITY_STUB_CACHE"] = cache
    atexit.register(shutil.rmtree, cache, True)
    for marker in ("version.txt", "version_diffusers_cache.txt"):  # skip the one-time "cache migration"
        Path(cache, marker).write_text("1")
    sys.path[:0] = [str(HERE), str(HERE / "parity_stubs"), str(src / "src"), str(src / "tf" / "src")]
    # transformers/__init__ imports dependency_versions_check, which asks importlib.metadata for the
    # versions of tokenizers/safetensors/huggingface_hub (stubs here, no metadata): skip only that check.
    dvc = types.ModuleType("transformers.dependency_versions_check")
    dvc.dep_version_check = lambda pkg, hint=None: None
    sys.modules["transformers.dependency_versions_check"] = dvc


def perturb_(model, gen):
    """Move every parameter away from its default init (norm weights off 1, biases off 0)."""
    import torch
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            s = float(p.std()) if p.numel() > 1 else 0.0
            if s < 1e-6:  # constant init: norm weights (1), biases (0), ...
                p.add_(noise * 0.2 + 0.05)
            else:
                p.add_(noise * 0.1 * s + 0.05 * s)


def persistent_state(model):
    sd = model.state_dict()
    params = dict(model.named_parameters())
    extra = sorted(set(sd) - set(params))
    return {k: v.detach().float().contiguous() for k, v in sd.items()}, extra


# ----------------------------------------------------------------------------------------- cases
def unet_mixed_config():
    return dict(
        sample_size=8, in_channels=4, out_channels=4, center_input_sample=False,
        flip_sin_to_cos=False, freq_shift=1,
        down_block_types=["CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=["CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"],
        block_out_channels=[16, 24, 24], layers_per_block=1, norm_num_groups=8,
        attention_head_dim=[2, 4, 4], transformer_layers_per_block=2, cross_attention_dim=24,
        time_cond_proj_dim=12,
    )


def unet_sd_like_config():
    return dict(
        sample_size=8, in_channels=4, out_channels=4, center_input_sample=False,
        flip_sin_to_cos=True, freq_shift=0,
        down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        block_out_channels=[8, 16, 16], layers_per_block=2, norm_num_groups=4,
        # diffusers 0.30 refuses num_attention_heads for this class (issue #2011): attention_head_dim
        # is what sets the number of heads (2 heads everywhere here; head dim = channels / 2).
        attention_head_dim=2, cross_attention_dim=24, use_linear_projection=True,
        upcast_attention=True, mid_block_scale_factor=1.5,
    )


def vae_config():
    return dict(
        in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
        block_out_channels=[8, 16, 16], layers_per_block=1, act_fn="silu", latent_channels=4,
        norm_num_groups=4, sample_size=32, scaling_factor=0.5,
    )


def run_unet(model, inp):
    import torch
    with torch.no_grad():
        out = model(inp["sample"], inp["timestep"], encoder_hidden_states=inp["encoder_hidden_states"],
                    timestep_cond=inp.get("timestep_cond"))
    return {"sample": out.sample}


def run_vae(model, inp):
    import torch
    with torch.no_grad():
        dist = model.encode(inp["image"]).latent_dist
        dec = model.decode(inp["latents"]).sample
    return {"posterior_mean": dist.mean, "posterior_logvar": dist.logvar, "decoded": dec}


def run_clip_text(model, inp):
    import torch
    with torch.no_grad():
        out = model(input_ids=inp["input_ids"])
        res = {"last_hidden_state": out.last_hidden_state}
        if hasattr(model, "text_projection"):
            res["text_embeds"] = out.text_embeds
            res["pooler_output"] = model.text_model(input_ids=inp["input_ids"]).pooler_output
        else:
            res["pooler_output"] = out.pooler_output
    return res


def run_clip_vision(model, inp):
    import torch
    with torch.no_grad():
        out = model(pixel_values=inp["pixel_values"])
        res = {"last_hidden_state": out.last_hidden_state}
        if hasattr(model, "visual_projection"):
            res["image_embeds"] = out.image_embeds
            res["pooler_output"] = model.vision_model(pixel_values=inp["pixel_values"]).pooler_output
        else:
            res["pooler_output"] = out.pooler_output
    return res


def make_cases():
    import torch
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
    from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPVisionConfig,
                              CLIPVisionModelWithProjection)

    def g(seed):
        return torch.Generator().manual_seed(seed)

    cases = []

    gi = g(101)
    cases.append(dict(
        name="unet_mixed", kind="diffusers", cls=UNet2DConditionModel, config=unet_mixed_config(), run=run_unet,
        inputs={"sample": torch.randn(2, 4, 9, 7, generator=gi),
                "timestep": torch.tensor([17, 803], dtype=torch.int64),
                "encoder_hidden_states": torch.randn(2, 5, 24, generator=gi),
                "timestep_cond": torch.randn(2, 12, generator=gi)}))

    gi = g(102)
    cases.append(dict(
        name="unet_sd_like", kind="diffusers", cls=UNet2DConditionModel, config=unet_sd_like_config(),
        run=run_unet,
        inputs={"sample": torch.randn(2, 4, 8, 8, generator=gi),
                "timestep": torch.tensor([999, 1], dtype=torch.int64),
                "encoder_hidden_states": torch.randn(2, 7, 24, generator=gi)}))

    gi = g(103)
    cases.append(dict(
        name="vae", kind="diffusers", cls=AutoencoderKL, config=vae_config(), run=run_vae,
        inputs={"image": torch.rand(2, 3, 32, 32, generator=gi) * 2 - 1,
                "latents": torch.randn(2, 4, 8, 8, generator=gi)}))

    # CLIP text, legacy eos_token_id=2: pooled at argmax(input_ids); EOT = 99 is the largest id.
    # row 0: EOT mid-row, 0-padding after; row 1: EOT-padding (argmax ties -> first); row 2: EOT last.
    ids = torch.tensor([[98, 5, 17, 40, 99, 0, 0, 0, 0, 0],
                        [98, 7, 99, 99, 99, 99, 99, 99, 99, 99],
                        [98, 3, 61, 12, 88, 44, 9, 70, 23, 99]], dtype=torch.int64)
    cases.append(dict(
        name="clip_text", kind="transformers", cls=CLIPTextModelWithProjection, run=run_clip_text,
        config=CLIPTextConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=37, max_position_embeddings=16, hidden_act="quick_gelu",
                              projection_dim=20, bos_token_id=98, eos_token_id=2, pad_token_id=1),
        inputs={"input_ids": ids}))

    # eos_token_id=90 (not 2): pooled at the FIRST position equal to 90; ids 95/97 > 90 come before the EOT
    # so argmax(input_ids) points elsewhere.
    ids = torch.tensor([[89, 95, 17, 90, 0, 0, 0, 0],
                        [89, 4, 97, 33, 90, 90, 90, 90],
                        [89, 12, 60, 7, 50, 99, 21, 90]], dtype=torch.int64)
    cases.append(dict(
        name="clip_text_gelu", kind="transformers", cls=CLIPTextModel, run=run_clip_text,
        config=CLIPTextConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=37, max_position_embeddings=16, hidden_act="gelu",
                              bos_token_id=89, eos_token_id=90, pad_token_id=0),
        inputs={"input_ids": ids}))

    gi = g(106)
    cases.append(dict(
        name="clip_vision", kind="transformers", cls=CLIPVisionModelWithProjection, run=run_clip_vision,
        config=CLIPVisionConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32,
                                num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                                projection_dim=20, hidden_act="quick_gelu"),
        inputs={"pixel_values": torch.randn(2, 3, 32, 32, generator=gi)}))
    return cases


def build(case, seed):
    import torch
    torch.manual_seed(seed)
    if case["kind"] == "diffusers":
        model = case["cls"](**case["config"])
    else:
        model = case["cls"](case["config"])
    model.eval()
    perturb_(model, torch.Generator().manual_seed(seed + 1))
    return model


def config_json(model, kind):
    if kind == "diffusers":
        return json.loads(model.to_json_string())  # what save_pretrained writes (adds _class_name etc.)
    cfg = model.config
    cfg.architectures = [model.__class__.__name__]  # save_pretrained sets this
    return cfg.to_dict()


def rebuild(case, folder):
    """Fresh model from the written config.json + weights only."""
    import torch
    from safetensors_py import load_file
    cfg = json.loads((folder / "config.json").read_text())
    if case["kind"] == "diffusers":
        model = case["cls"].from_config(cfg)
        wfile = "diffusion_pytorch_model.safetensors"
    else:
        cfg_cls = type(case["config"])
        model = case["cls"](cfg_cls.from_dict(cfg))
        wfile = "model.safetensors"
    sd = {k: torch.from_numpy(v) for k, v in load_file(folder / wfile).items()}
    model.load_state_dict(sd, strict=True)
    model.eval()
    inp = {k: torch.from_numpy(v) for k, v in load_file(folder / "inputs.safetensors").items()}
    return model, inp


def reference_notes(case, model, outputs):
    """Facts about the reference behaviour that the C++ side depends on (asserted, then recorded)."""
    import torch
    notes = {}
    if case["kind"] == "diffusers":
        procs = sorted({type(m.processor).__name__ for m in model.modules() if hasattr(m, "processor")})
        notes["attention_processors"] = procs
    elif "input_ids" in case["inputs"]:
        ids = case["inputs"]["input_ids"]
        eos = case["config"].eos_token_id
        rows = torch.arange(ids.shape[0])
        if eos == 2:
            pos, rule = ids.argmax(-1), "argmax(input_ids) (legacy eos_token_id == 2)"
        else:
            pos, rule = (ids == eos).int().argmax(-1), f"first position where input_ids == {eos}"
            assert not torch.equal(pos, ids.argmax(-1)), "case should make the two rules differ"
        assert torch.equal(outputs["pooler_output"], outputs["last_hidden_state"][rows, pos]), rule
        notes["pooled_rule"] = rule
        notes["pooled_positions"] = pos.tolist()
    return notes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    setup_paths(args.src)
    import torch
    import diffusers
    import transformers
    from safetensors_py import load_file, save_file
    torch.set_num_threads(1)

    print(f"torch {torch.__version__}  diffusers {diffusers.__version__}  transformers {transformers.__version__}")
    out = Path(args.out)
    summary = {}
    for i, case in enumerate(make_cases()):
        if args.only and case["name"] not in args.only:
            continue
        folder = out / case["name"]
        folder.mkdir(parents=True, exist_ok=True)
        model = build(case, 1000 + 10 * i)
        weights, buffers = persistent_state(model)
        outputs = case["run"](model, case["inputs"])
        for k, v in outputs.items():  # see README: torch 1.13 + unet_mixed intermittently gives all-NaN
            if not torch.isfinite(v).all():
                sys.exit(f"{case['name']}.{k}: non-finite reference output; run the script again")
        meta = {"format": "pt", "source": "tools/make_parity_fixtures.py"}
        wfile = "diffusion_pytorch_model.safetensors" if case["kind"] == "diffusers" else "model.safetensors"
        (folder / "config.json").write_text(json.dumps(config_json(model, case["kind"]), indent=2, sort_keys=True) + "\n")
        save_file(weights, folder / wfile, meta)
        save_file(case["inputs"], folder / "inputs.safetensors", meta)
        save_file({k: v.float() for k, v in outputs.items()}, folder / "outputs.safetensors", meta)

        # self-check: rebuild from files only, recompute, compare with the written outputs
        model2, inp2 = rebuild(case, folder)
        ref = load_file(folder / "outputs.safetensors")
        got = case["run"](model2, inp2)
        assert sorted(got) == sorted(ref), (sorted(got), sorted(ref))
        for k in ref:
            d = (got[k] - torch.from_numpy(ref[k])).abs().max().item()
            assert d == 0.0, f"{case['name']}.{k}: rebuilt model differs by {d}"
        notes = reference_notes(case, model, outputs)
        info = {k: {"shape": list(v.shape), "max_abs": float(abs(v).max())} for k, v in ref.items()}
        size = sum(f.stat().st_size for f in folder.iterdir())
        summary[case["name"]] = dict(outputs=info, bytes=size, n_weights=len(weights),
                                     n_params=int(sum(v.numel() for v in weights.values())),
                                     non_parameter_state=buffers, notes=notes)
        print(f"{case['name']}: {size} bytes, {len(weights)} tensors, outputs "
              + ", ".join(f"{k}{info[k]['shape']} max|.|={info[k]['max_abs']:.4g}" for k in sorted(info))
              + " -- self-check OK")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
