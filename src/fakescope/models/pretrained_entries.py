"""The pretrained detectors fakescope knows by name: the entry schema, its registry and the entries, data only
(downloading and conversion: :mod:`fakescope.models.pretrained`, which imports this module).

Where each fact comes from is said beside it. "official" = the authors' repository or model page;
"third-party" = another project's copy (a Git LFS pointer, a pinned download), used where the authors publish
no hash; "derived" = worked out by us from official numbers. Published numbers are the authors' own, quoted
with where they are printed.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from fakescope.models.convert import CONVERTERS
from fakescope.models.hub import RemoteFile
from fakescope.preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD
from fakescope.registry import Registry
from fakescope.schema import Strict


class PretrainedEntry(Strict):
    """One released detector: where its weights are, what they are, and how fakescope reads them."""

    arch: str = Field(description="the registered fakescope model the weights are converted into")
    tag: str
    file: RemoteFile | None = Field(default=None, description="the official weights file (None: all weights "
                                                               "come from the Hugging Face Hub)")
    converter: str = Field(default="", description="the key map of fakescope.models.convert")
    model: dict[str, Any] = Field(default_factory=dict, description="model config (incl. the official "
                                                                    "evaluation's preprocessing)")
    from_hub: tuple[str, ...] = Field(default=(), description="parameter prefixes whose weights come from the "
                                                              "Hub by name (pretrained backbones), not the file")
    licence: str
    paper: str
    trained_on: str
    published: str = Field(description="the authors' numbers for these weights, and where they are printed")
    preprocessing: str = Field(description="the official evaluation's preprocessing, in words")
    source: str = Field(description="the official repository or model page")
    notes: str = ""

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.tag}"


PRETRAINED: Registry[PretrainedEntry] = Registry("pretrained detector")


def register_pretrained(entry: PretrainedEntry) -> PretrainedEntry:
    if entry.file is not None and entry.converter not in CONVERTERS:
        raise ValueError(f"{entry.name}: unknown converter {entry.converter!r}")
    return PRETRAINED.add(entry.name, entry, description=entry.paper)


def list_pretrained(pattern: str = "*") -> list[str]:
    """Sorted names (``ARCH.TAG``) of the pretrained detectors matching a shell-style ``pattern``."""
    return PRETRAINED.names(pattern)


def pretrained_entry(name: str) -> PretrainedEntry:
    return PRETRAINED.get(name)


IMAGE_CROP_224 = {"input_size": 224, "policy": "crop", "face": None}  # no resize, centre 224 crop, ImageNet norm
HALF = (0.5, 0.5, 0.5)

# ----------------------------------------------------------------------------------------- CNNDetection
_CNNDET = dict(
    arch="cnndetection_resnet50", converter="torchvision_resnet", model={"preprocess": IMAGE_CROP_224},
    licence="CC BY-NC-SA 4.0",
    paper="Wang et al., CNN-generated images are surprisingly easy to spot... for now, CVPR 2020 (arXiv 1912.11035)",
    preprocessing="official eval.py: no resize, centre crop 224 (the README also reports --no_crop), ImageNet "
                  "mean/std, blur and JPEG off; sigmoid of the one logit = P(fake)",
    source="https://github.com/PeterWang512/CNNDetection",
    notes="The file is a training checkpoint {'model', 'optimizer', 'total_steps'} (networks/base_model.py); the "
          "ResNet-50 weights under 'model' are converted, the optimizer state and step counter are dropped.",
)
register_pretrained(PretrainedEntry(
    tag="blur_jpg_prob0.5",
    file=RemoteFile("blur_jpg_prob0.5.pth",
                    ("https://www.dropbox.com/s/2g2jagq2jn1fd0i/blur_jpg_prob0.5.pth?dl=0",
                     "https://www.dropbox.com/s/2g2jagq2jn1fd0i/blur_jpg_prob0.5.pth?dl=1"),
                    size=282_442_597,
                    sha256="3533f3e58a3b82215f21197f2faf4e99b911ec42a4a6e2d7823e04d5f3fd245a",
                    source="URL: official weights/download_weights.sh; size and SHA-256: third-party (a Git LFS "
                           "pointer of a copy; the authors publish none)"),
    trained_on="ForenSynths ProGAN training set, 20 LSUN classes; blur and JPEG augmentation with probability 0.5",
    published="README 'Evaluation' table, AP with 224 crop: ProGAN 100.0, StyleGAN 98.5, BigGAN 88.2, CycleGAN "
              "96.8, StarGAN 95.4, GauGAN 98.1, CRN 98.9, IMLE 99.5, SITD 92.7, SAN 63.9, Deepfake 66.3 (mean over "
              "these 11: 90.8, derived by us); accuracy 100.0 / 73.4 / 59.0 / 80.8 / 81.0 / 79.3 / 87.6 / 94.1 / "
              "78.3 / 50.0 / 51.1",
    **_CNNDET))
register_pretrained(PretrainedEntry(
    tag="blur_jpg_prob0.1",
    file=RemoteFile("blur_jpg_prob0.1.pth",
                    ("https://www.dropbox.com/s/h7tkpcgiwuftb6g/blur_jpg_prob0.1.pth?dl=0",
                     "https://www.dropbox.com/s/h7tkpcgiwuftb6g/blur_jpg_prob0.1.pth?dl=1"),
                    size=282_442_597,
                    sha256="a73295ac66f9cb74d558ce3ade46f75e2f2997ed05eeed0f4b774623372058ea",
                    source="URL: official weights/download_weights.sh; size and SHA-256: third-party (two "
                           "independent copies agree; the authors publish none)"),
    trained_on="ForenSynths ProGAN training set, 20 LSUN classes; blur and JPEG augmentation with probability 0.1",
    published="README 'Evaluation' table, AP with 224 crop: ProGAN 100.0, StyleGAN 99.6, BigGAN 84.5, CycleGAN "
              "93.5, StarGAN 98.2, GauGAN 89.5, CRN 98.2, IMLE 98.4, SITD 97.2, SAN 70.5, Deepfake 89.0 (mean over "
              "these 11: 92.6, derived by us)",
    **_CNNDET))

# ----------------------------------------------------------------------------------- UniversalFakeDetect
register_pretrained(PretrainedEntry(
    arch="univfd_clip", tag="progan",
    file=RemoteFile("fc_weights.pth",
                    ("https://raw.githubusercontent.com/WisconsinAIVision/UniversalFakeDetect/"
                     "763391eff3284f6950ffb323599c1a7a819f2ecd/pretrained_weights/fc_weights.pth",),
                    size=4_083, sha256="477100745713bcc957beb2b40859536859b6483fd6301b3b9293151b194c7847",
                    source="official: pretrained_weights/fc_weights.pth of the repository (an ordinary git file, "
                           "added in commit 763391e and unchanged since); size and SHA-256 of its bytes"),
    converter="linear_head", from_hub=("backbone.",),
    model={"pretrained": True, "preprocess": {"input_size": 224, "policy": "crop", "mean": CLIP_MEAN,
                                              "std": CLIP_STD, "face": None}},
    licence="MIT",
    paper="Ojha, Li, Lee, Towards Universal Fake Image Detectors that Generalize Across Generative Models, CVPR 2023 "
          "(arXiv 2302.10174)",
    trained_on="ForenSynths ProGAN training set (the linear head only; CLIP ViT-L/14 frozen)",
    published="abstract: +15.07 mAP and +25.90% accuracy over the previous state of the art on unseen diffusion and "
              "autoregressive models (per-generator tables in the paper, not reproduced here)",
    preprocessing="official validate.py: centre crop 224 without resize (when the head was released it resized to "
                  "256 first; commit 3bf7228 removed that), CLIP mean/std; the head reads CLIP's projected 768-d "
                  "image embedding",
    source="https://github.com/WisconsinAIVision/UniversalFakeDetect",
    notes="CLIP ViT-L/14 comes from the Hugging Face Hub (openai/clip-vit-large-patch14, transformers' "
          "CLIPVisionModelWithProjection, whose image_embeds are the projected embedding the official code reads); "
          "the official code loads OpenAI's ViT-L-14.pt. That the two are numerically identical is not checked "
          "here. The file's tensors were saved on a GPU; they are read to the CPU.",
))

# ----------------------------------------------------------------------------------------------- NPR
_NPR = dict(
    arch="npr", converter="npr",
    model={"preprocess": {"input_size": 256, "policy": "resize", "interpolation": "bilinear", "face": None}},
    licence="none stated (the repository has no licence file)",
    paper="Tan et al., Rethinking the Up-Sampling Operations in CNN-based Generative Network for Generalizable "
          "Deepfake Detection, CVPR 2024 (arXiv 2312.10461)",
    trained_on="ForenSynths ProGAN training set, 4 classes (car, cat, chair, horse), from scratch",
    preprocessing="official test.py on ForenSynths: resize to 256 x 256 (bilinear), no crop, ImageNet mean/std; "
                  "the NPR residual x - nearest(down 0.5, up 2) is scaled by 2/3 inside the network",
    source="https://github.com/chuangchuangtan/NPR-DeepfakeDetection",
)
register_pretrained(PretrainedEntry(
    tag="progan_4class",
    file=RemoteFile("NPR.pth",
                    ("https://raw.githubusercontent.com/chuangchuangtan/NPR-DeepfakeDetection/"
                     "73cde1ced21291bfb504a2add2b53fbe99c4f433/NPR.pth",),
                    size=17_393_733, sha256="3939297e9399e0b992f87211610769d87d899de50d56da0204d6cbda2d483a53",
                    source="URL: official (an ordinary git file, blob 2430d34a6d6a1143d46d4276a05536770b1a2a97); "
                           "size and SHA-256: third-party (four copies agree)"),
    published="README table (commented out in the README; labelled 'Table1 Test'), accuracy / AP on ForenSynths: "
              "ProGAN 99.8/100.0, StyleGAN 96.3/99.8, StyleGAN2 97.3/100.0, BigGAN 87.5/94.5, CycleGAN 95.0/99.5, "
              "StarGAN 99.7/100.0, GauGAN 86.6/88.8, Deepfake 77.4/86.2, mean 92.5/96.1",
    notes="The file is a training checkpoint: the weights under 'model' carry DataParallel's 'module.' prefix "
          "(the maintainer's loading recipe, issues #11 and #16); the optimizer state is dropped.",
    **_NPR))
register_pretrained(PretrainedEntry(
    tag="progan_4class_3090",
    file=RemoteFile("model_epoch_last_3090.pth",
                    ("https://raw.githubusercontent.com/chuangchuangtan/NPR-DeepfakeDetection/"
                     "68338a07847e891534f3d0b0a0e25bb137b684f7/model_epoch_last_3090.pth",),
                    size=5_842_385, sha256="b67a91555ce786a6d0463ff0cb2b0b874d1c3f971b0e3febd2ae5618a80f7e8a",
                    source="URL: official (an ordinary git file, blob f3efe21a3cb98da75b50451c3891ad0d2fa9fb2b, "
                           "commit 68338a0); size and SHA-256: third-party"),
    published="README, AIGCDetectBenchmark table (accuracy): ProGAN 99.9, StyleGAN 96.1, BigGAN 87.3, CycleGAN "
              "90.3, StarGAN 99.6, GauGAN 85.4, StyleGAN2 98.1, WFIR 60.7, ADM 84.9, Glide 96.7, Midjourney 92.6, "
              "SDv1.4 97.4, SDv1.5 97.5, VQDM 90.1, Wukong 91.7, DALLE2 99.6, average 91.7",
    notes="A plain state dict (146 tensors). The README evaluates it on AIGCDetectBenchmark without resize or crop.",
    **_NPR))

# ------------------------------------------------------------------------------------------ EfficientNet-B4
register_pretrained(PretrainedEntry(
    arch="efficientnet_b4", tag="deepfakebench_ffpp_c23",
    file=RemoteFile("effnb4_best.pth", ("https://github.com/SCLBD/DeepfakeBench/releases/download/v1.0.1/"
                                        "effnb4_best.pth",),
                    source="URL: the official release v1.0.1 (asset name from third-party download lists); the "
                           "authors publish no size or SHA-256, and none was found: the hash of the file converted "
                           "is recorded in the checkpoint"),
    converter="deepfakebench_efficientnet",
    model={"stem_padding": False, "dropout": 0.0,
           "preprocess": {"input_size": 256, "policy": "resize", "interpolation": "bicubic", "mean": HALF,
                          "std": HALF, "face": {"crop": "align", "margin": 1.3, "size": 256}}},
    licence="CC BY-NC 4.0",
    paper="Yan et al., DeepfakeBench: A Comprehensive Benchmark of Deepfake Detection, NeurIPS 2023 Datasets and "
          "Benchmarks (arXiv 2307.01426)",
    trained_on="FaceForensics++ c23 (all four manipulations), DeepfakeBench's aligned face crops",
    published="README results table (frame AUC, 'cited from our paper'): FF++ c23 0.9567, FF++ c40 0.8150, "
              "Celeb-DF v1 0.7909, Celeb-DF v2 0.7487, DeepFakeDetection 0.8148, DFDC 0.6955, DFDC-P 0.7283",
    preprocessing="face crops aligned on five landmarks (dlib, scale 1.3, 256 px); bicubic resize to 256, mean/std "
                  "0.5; softmax over two classes, index 1 = fake",
    source="https://github.com/SCLBD/DeepfakeBench",
    notes="efficientnet_pytorch's B4 with DeepfakeBench's unpadded stem and the padding it fixes for 380 px inputs "
          "(transformers' EfficientNet with depthwise_padding [6] and stem_padding false: the same outputs, checked "
          "against efficientnet_pytorch in the tests). The two-class head becomes one logit z_fake - z_real. "
          "fakescope's face stage aligns on MTCNN's landmarks with DeepfakeBench's template and scale; "
          "DeepfakeBench finds them with dlib.",
))
register_pretrained(PretrainedEntry(
    arch="xception", tag="deepfakebench_ffpp_c23",
    file=RemoteFile("xception_best.pth", ("https://github.com/SCLBD/DeepfakeBench/releases/download/v1.0.1/"
                                          "xception_best.pth",),
                    size=87_763_531, sha256="dd61186f9ac8e99aae85982cae338b555dfaeef042f6b699e5a55cae3998ba47",
                    source="URL: the official release v1.0.1 (the README names xception_best.pth); size and "
                           "SHA-256: third-party (a Git LFS pointer of a copy, and a second project pinning the "
                           "same hash; the authors publish none)"),
    converter="deepfakebench_xception",
    model={"preprocess": {"input_size": 256, "policy": "resize", "interpolation": "bicubic", "mean": HALF,
                          "std": HALF, "face": {"crop": "align", "margin": 1.3, "size": 256}}},
    licence="CC BY-NC 4.0",
    paper="Yan et al., DeepfakeBench: A Comprehensive Benchmark of Deepfake Detection, NeurIPS 2023 Datasets and "
          "Benchmarks (arXiv 2307.01426)",
    trained_on="FaceForensics++ c23 (all four manipulations), DeepfakeBench's aligned face crops",
    published="README results table (frame AUC, 'cited from our paper'): FF++ c23 0.9637, FF++ c40 0.8261, "
              "Celeb-DF v1 0.7794, Celeb-DF v2 0.7365, DeepFakeDetection 0.8163, DFDC 0.7077, DFDC-P 0.7374",
    preprocessing="face crops aligned on five landmarks (dlib, scale 1.3, 256 px); bicubic resize to 256, mean/std "
                  "0.5; softmax over two classes, index 1 = fake",
    source="https://github.com/SCLBD/DeepfakeBench",
    notes="The file is a plain state dict of the detector ('backbone.' keys); its unused 'adjust_channel' layer is "
          "dropped and the two-class 'last_linear' becomes one logit z_fake - z_real. fakescope's face stage "
          "aligns on MTCNN's landmarks with DeepfakeBench's template and scale; DeepfakeBench finds them with dlib.",
))
register_pretrained(PretrainedEntry(
    arch="efficientnet_b4", tag="icpr2020_ffpp",
    file=RemoteFile("EfficientNetB4_FFPP_bestval-93aaad84946829e793d1a67ed7e0309b535e2f2395acb4f8d16b92c0616ba8d7.pth",
                    ("https://f002.backblazeb2.com/file/icpr2020/EfficientNetB4_FFPP_bestval-"
                     "93aaad84946829e793d1a67ed7e0309b535e2f2395acb4f8d16b92c0616ba8d7.pth",),
                    sha256="93aaad84946829e793d1a67ed7e0309b535e2f2395acb4f8d16b92c0616ba8d7",
                    source="official: architectures/weights.py of the repository; the SHA-256 is the file name's "
                           "suffix, which the authors' loader checks (torch.hub check_hash)"),
    converter="icpr2020_efficientnet",
    model={"dropout": 0.0, "preprocess": {"input_size": 224, "policy": "resize", "interpolation": "bilinear",
                                          "face": {"crop": "box", "margin": 1.0, "size": 224}}},
    licence="GPL-3.0",
    paper="Bonettini et al., Video Face Manipulation Detection Through Ensemble of CNNs, ICPR 2020 "
          "(arXiv 2004.07676)",
    trained_on="FaceForensics++ (c23 frames, the authors' split)",
    published="paper, FF++ test: see Table 2 of the paper (not reproduced here)",
    preprocessing="BlazeFace face crops with the 'scale' policy at 224 px, ImageNet mean/std; one logit, "
                  "sigmoid = P(fake)",
    source="https://github.com/polimi-ispl/icpr2020dfdc",
    notes="efficientnet_pytorch's B4 (TensorFlow 'same' padding at 380 px) with a Linear(1792, 1) head. "
          "fakescope's face stage (MTCNN, a square of the box, 224 px) approximates the authors' BlazeFace crop.",
))

# ------------------------------------------------------------------------------- Hugging Face classifiers
register_pretrained(PretrainedEntry(
    arch="hf_classifier", tag="organika_sdxl_detector",
    model={"pretrained": True, "hub_name": "Organika/sdxl-detector",
           "revision": "4979959f9edee49b4a82720342ff4a74148120d3", "fake_labels": ["artificial"],
           "preprocess": {"input_size": 224, "policy": "resize", "interpolation": "bicubic", "mean": IMAGENET_MEAN,
                          "std": IMAGENET_STD, "face": None}},
    licence="CC BY-NC 3.0",
    paper="Organika/sdxl-detector (model card), fine-tuned from umm-maybe/AI-image-detector (a Swin transformer)",
    trained_on="Wikimedia photographs and SDXL images generated from BLIP captions of them "
               "(Colby/autotrain-data-sdxl-detection)",
    published="model card, on its validation split: accuracy 0.98127, AUC 0.99805, F1 0.97326; the card warns "
              "that other generators than SDXL may be detected less well",
    preprocessing="preprocessor_config.json: resize to 224 x 224, bicubic, ImageNet mean/std",
    source="https://huggingface.co/Organika/sdxl-detector",
    notes="Loaded by hub name and revision through transformers' AutoModelForImageClassification; its label "
          "'artificial' means fake (read from the model's config when it loads: a missing label is an error).",
))
