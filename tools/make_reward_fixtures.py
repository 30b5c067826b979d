#!/usr/bin/env python3
"""Reference fixtures for rewardgen's rewards (src/rewards/), computed with the reference code.

  /usr/bin/python3 tools/make_reward_fixtures.py --src /tmp/refsrc --open-clip /tmp/hpssrc/hpsv2/src \
      --out tests/data/rewards

--src is the transformers source tree of tools/make_parity_fixtures.py (same stubs, same commit);
--open-clip is the open_clip package bundled with HPSv2 (github tgxs002/HPSv2 866735e, hpsv2/src), the
code HPSv2 scores with: `git archive 866735e hpsv2/src/open_clip | tar -x -C /tmp/hpssrc`. It needs
torchvision only for a type it never uses here (FrozenBatchNorm2d): a placeholder module stands in.
docs/rewards.md ("Tests and fixtures") lists what each file holds.
"""
import argparse
import io
import json
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, features

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import safetensors_py  # noqa: E402
from make_parity_fixtures import perturb_, setup_paths  # noqa: E402

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The tiny tokenizer of tests/tiny_models.h: SOT 10, EOT 11; words of a, b, c.
TINY_VOCAB = {"a": 0, "b": 1, "c": 2, "a</w>": 3, "b</w>": 4, "c</w>": 5, "ab": 6, "abc</w>": 7, "bc</w>": 8,
              "ab</w>": 9, "<|startoftext|>": 10, "<|endoftext|>": 11, "!": 12, "!</w>": 13, "ca": 14}
TINY_MERGES = "#version: 0.2\na b\nab c</w>\nb c</w>\na b</w>\nc a\n"
PROMPTS = ["abc", "ab c"]
# Their ids with 8 positions, by hand from the vocabulary and merges above; the C++ test checks that
# ClipTokenizer gives the same (EOT-padded).
PROMPT_IDS = [[10, 7, 11, 11, 11, 11, 11, 11], [10, 9, 5, 11, 11, 11, 11, 11]]


def save(path, tensors):
    safetensors_py.save_file({k: (v.contiguous() if torch.is_tensor(v) else v) for k, v in tensors.items()}, str(path))


def write_tokenizer(d):
    (d / "vocab.json").write_text(json.dumps(TINY_VOCAB))
    (d / "merges.txt").write_text(TINY_MERGES)


# ------------------------------------------------------------------------------ preprocessing
def clip_preprocess(images, size, torchvision_crop):
    """CLIPImageProcessor / open_clip's eval transform on float images in [-1, 1], without 8-bit rounding:
    resize the shorter side to `size` (PIL bicubic with antialias = torch's antialiased bicubic), the
    longer to int(size * long / short), centre crop (transformers: margin // 2; torchvision: round(margin / 2),
    Python's round half to even), scale to [0, 1], normalise."""
    _, _, h, w = images.shape
    short, long = min(h, w), max(h, w)
    new_long = int(size * long / short)
    nh, nw = (size, new_long) if h <= w else (new_long, size)
    x = F.interpolate(images, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    crop = (lambda m: int(round(m / 2.0))) if torchvision_crop else (lambda m: m // 2)
    top, left = crop(nh - size), crop(nw - size)
    x = x[:, :, top:top + size, left:left + size]
    x = (x + 1) / 2
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def make_resize(out):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 7, 9, generator=g, dtype=torch.float64) * 2 - 1
    tensors = {"input": x}
    for h, w in [(4, 5), (10, 12), (3, 9), (7, 4), (2, 2)]:
        y = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
        # The same resampling through PIL (float 'F' images, double coefficients): the reference of
        # CLIPImageProcessor and open_clip. They must agree, or torch is not the right reference.
        for c in range(3):
            pil = Image.fromarray(x[0, c].float().numpy(), mode="F").resize((w, h), Image.BICUBIC)
            assert np.abs(np.asarray(pil) - y[0, c].float().numpy()).max() < 2e-6, (h, w, c)
        tensors[f"out_{h}x{w}"] = y
    imgs = torch.rand(2, 3, 12, 18, generator=g, dtype=torch.float64) * 2 - 1
    tensors["pre_input"] = imgs
    tensors["pre_8"] = clip_preprocess(imgs, 8, False)
    tall = torch.rand(1, 3, 19, 10, generator=g, dtype=torch.float64) * 2 - 1  # long side 15: margin 7
    tensors["pre_tall_input"] = tall
    tensors["pre_tall_8_floor"] = clip_preprocess(tall, 8, False)
    tensors["pre_tall_8_round"] = clip_preprocess(tall, 8, True)
    save(out / "resize.safetensors", tensors)


# ------------------------------------------------------------------------------------- JPEG
def make_jpeg(out):
    assert features.check_feature("libjpeg_turbo"), "PIL is not built on libjpeg-turbo"
    rng = np.random.default_rng(3)
    images = {
        "flat": np.broadcast_to(np.array([128, 64, 200], np.uint8), (16, 16, 3)).copy(),
        "gradient": np.stack(np.meshgrid(np.arange(40) * 6, np.arange(24) * 10) + [np.full((24, 40), 90)], -1).astype(np.uint8),
        "noise": rng.integers(0, 256, (21, 35, 3), dtype=np.uint8),  # odd sizes: 4:2:0 pads the chroma blocks
    }
    tensors = {}
    for name, rgb in images.items():
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=95)  # DDPO/RLCM's call: 4:2:0, quality 95
        tensors[name] = torch.from_numpy(rgb)
        tensors[name + "_bytes"] = torch.tensor([buf.tell()], dtype=torch.int64)
    save(out / "jpeg.safetensors", tensors)

    # `rewardgen reward` CLI test: two 16x16 PNGs and their prompts; the JPEG sizes go into
    # tests/CMakeLists.txt's expected output.
    d = out / "cli_images"
    d.mkdir(parents=True, exist_ok=True)
    for name, rgb in [("01_flat.png", images["flat"]), ("02_noise.png", images["noise"][:16, :16])]:
        Image.fromarray(rgb).save(d / name)
        buf = io.BytesIO()
        Image.open(d / name).convert("RGB").save(buf, format="JPEG", quality=95)
        print(f"cli_images/{name}: JPEG quality 95 = {buf.tell()} bytes")
    (out / "cli_prompts.txt").write_text("abc\nab c\n")
    (out / "cli_prompts_3.txt").write_text("abc\nab c\nc\n")


# -------------------------------------------------------------------------------- HF CLIPModel
def make_hf_clip(out, head):
    from transformers import CLIPConfig, CLIPModel
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=16, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=3, max_position_embeddings=8, eos_token_id=11, pad_token_id=11,
                         bos_token_id=10),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=28, patch_size=14),
        projection_dim=16, logit_scale_init_value=3.2)
    config.architectures = ["CLIPModel"]
    model = CLIPModel(config).eval()
    perturb_(model, torch.Generator().manual_seed(5))
    with torch.no_grad():
        model.logit_scale.fill_(3.2)  # exp(3.2) = 24.53; perturb_ moved it
    d = out / "clip_hf"
    d.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    save(d / "model.safetensors", sd)
    (d / "config.json").write_text(model.config.to_json_string())
    write_tokenizer(d)

    g = torch.Generator().manual_seed(7)
    images = torch.rand(2, 3, 20, 28, generator=g, dtype=torch.float64) * 2 - 1
    ids = torch.tensor(PROMPT_IDS)
    model = model.double()
    # transformers builds its causal mask with torch.full(..., finfo(dtype).min) in the default dtype
    torch.set_default_dtype(torch.float64)
    with torch.no_grad():
        pixels = clip_preprocess(images, 28, False)
        img = model.get_image_features(pixel_values=pixels)
        txt = model.get_text_features(input_ids=ids)
        cos = F.cosine_similarity(img, txt, dim=-1)
        unit = img / img.norm(dim=-1, keepdim=True)
        aesthetic = head.double()(unit).squeeze(1)
    torch.set_default_dtype(torch.float32)
    save(out / "clip_hf_expected.safetensors", {
        "images": images, "input_ids": ids, "pixel_values": pixels, "image_embeds": img, "text_embeds": txt,
        "clip_score": 100 * cos, "pickscore": model.logit_scale.exp() * cos, "aesthetic": aesthetic})


# ------------------------------------------------------------------------------ LAION aesthetic head
class AestheticHead(torch.nn.Module):
    """improved-aesthetic-predictor's MLP (dropout between the first four Linears; no activations), with
    small widths: 16 -> 12 -> 8 -> 6 -> 4 -> 1 instead of 768 -> 1024 -> 128 -> 64 -> 16 -> 1."""

    def __init__(self, dims):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(dims[0], dims[1]), torch.nn.Dropout(0.2),
            torch.nn.Linear(dims[1], dims[2]), torch.nn.Dropout(0.2),
            torch.nn.Linear(dims[2], dims[3]), torch.nn.Dropout(0.1),
            torch.nn.Linear(dims[3], dims[4]),
            torch.nn.Linear(dims[4], dims[5]))

    def forward(self, x):
        return self.layers(x)


def make_aesthetic_head(out):
    torch.manual_seed(11)
    head = AestheticHead([16, 12, 8, 6, 4, 1]).eval()
    sd = head.state_dict()  # an OrderedDict, as the original sac+logos+ava1-l14-linearMSE.pth
    torch.save(sd, out / "aesthetic_head.pth")
    save(out / "aesthetic_head.safetensors", {k: v for k, v in sd.items()})
    return head


# --------------------------------------------------------------------------------- OpenCLIP / HPSv2
def import_open_clip(path):
    misc = types.ModuleType("torchvision.ops.misc")
    misc.FrozenBatchNorm2d = type("FrozenBatchNorm2d", (), {})  # named in utils.py, unused for ViTs
    sys.modules.update({"torchvision": types.ModuleType("torchvision"), "torchvision.ops": types.ModuleType("torchvision.ops"),
                        "torchvision.ops.misc": misc})
    pkg = types.ModuleType("open_clip")  # skip open_clip/__init__ (factory, hub downloads)
    pkg.__path__ = [str(Path(path) / "open_clip")]
    sys.modules["open_clip"] = pkg
    import open_clip.model as model_module
    return model_module


def make_open_clip(out, open_clip_src):
    M = import_open_clip(open_clip_src)
    torch.manual_seed(0)
    cfg = dict(embed_dim=16,
               vision_cfg=dict(image_size=28, layers=2, width=32, head_width=16, patch_size=14),
               text_cfg=dict(context_length=8, vocab_size=16, width=24, heads=3, layers=2))
    model = M.CLIP(**cfg).eval()  # quick_gelu False: nn.GELU, as ViT-H-14 for HPSv2
    perturb_(model, torch.Generator().manual_seed(6))
    with torch.no_grad():
        model.logit_scale.fill_(4.0)
    d = out / "open_clip"
    d.mkdir(parents=True, exist_ok=True)
    sd = OrderedDict((k, v.detach().float().contiguous()) for k, v in model.state_dict().items())
    torch.save({"state_dict": sd}, d / "hpsv2_tiny.pt")  # HPS_v2_compressed.pt's layout
    save(d / "hpsv2_tiny.safetensors", sd)
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}, indent=2))
    write_tokenizer(d)

    g = torch.Generator().manual_seed(7)
    images = torch.rand(2, 3, 20, 28, generator=g, dtype=torch.float64) * 2 - 1
    ids = torch.tensor(PROMPT_IDS)
    ids_open_clip = torch.where(torch.arange(8) > ids.argmax(-1, keepdim=True), 0, ids)  # open_clip pads with 0
    model = model.double()
    with torch.no_grad():
        pixels = clip_preprocess(images, 28, True)  # torchvision's CenterCrop in open_clip's transform
        img = model.encode_image(pixels, normalize=True)
        txt = model.encode_text(ids_open_clip, normalize=True)
        txt_eot_padded = model.encode_text(ids, normalize=True)
    assert torch.allclose(txt, txt_eot_padded, atol=1e-12), "the causal mask hides the padding"
    save(out / "open_clip_expected.safetensors", {
        "images": images, "input_ids": ids, "pixel_values": pixels, "image_embeds": img, "text_embeds": txt,
        "hpsv2": 100 * (img * txt).sum(-1)})


# -------------------------------------------------------------------------------- .pth reading
def make_pth(out):
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    tensors = OrderedDict()
    tensors["f32"] = base
    tensors["transposed"] = base.t()  # a non-contiguous view of the same storage
    tensors["f16"] = torch.tensor([0.5, -1.25, 3.0], dtype=torch.float16)
    tensors["i64"] = torch.tensor([7, -8, 9], dtype=torch.int64)
    tensors["scalar"] = torch.tensor(2.5, dtype=torch.float64)
    torch.save(tensors, out / "pth_tensors.pth")
    torch.save({"state_dict": tensors, "epoch": 3}, out / "pth_wrapped.pth")
    torch.save(tensors, out / "pth_legacy.pth", _use_new_zipfile_serialization=False)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="transformers source tree (see make_parity_fixtures.py)")
    p.add_argument("--open-clip", required=True, help="HPSv2's hpsv2/src folder (holds open_clip/)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    setup_paths(a.src)
    make_resize(out)
    make_jpeg(out)
    head = make_aesthetic_head(out)
    make_hf_clip(out, head)
    make_open_clip(out, a.open_clip)
    make_pth(out)
    print("wrote", sorted(str(f.relative_to(out)) for f in out.rglob("*") if f.is_file()))


if __name__ == "__main__":
    main()
