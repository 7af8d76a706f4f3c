"""Batch norms folded into the convolutions before them (fakescope.inference.folding), the copy of a model that
detect scores with. Behaviour only: the model's scores, on weights whose scores depend on the input; a fold made
only where it keeps the function, and made where a check of the whole model on random pixels refused it."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import fakescope
from fakescope.inference.folding import fold_batchnorm


def input_dependent(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Batch-norm statistics from ``x`` (as training leaves them) and the last linear layer rescaled to logits of
    standard deviation 1 on it: drawn as built, EfficientNet's scores are the same for every input."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        model(model.normalize(x))
        model.eval()
        head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        logits = model(model.normalize(x)).flatten()
        head.weight /= logits.std()
        head.bias -= logits.mean()
        head.bias /= logits.std()
    return model


def folded(fast: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in fast.modules() if isinstance(m, nn.BatchNorm2d) and "forward" in vars(m)]


class Pixels(nn.Module):
    """A small model with detect's normalize."""

    def normalize(self, x):
        return x.float() / 127.5 - 1.0


def smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Images with the large smooth areas of photographs (coarse colours upsampled, a little noise)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=gen)
    img = nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    img = img + 0.05 * torch.randn(n, 3, size, size, generator=gen)
    return (255 * img).clamp(0, 255).to(torch.uint8)


# float32 rounding alone moves these models' scores, by an amount that depends on the CPU's kernels: with
# ATEN_CPU_CAPABILITY=default (scalar kernels) a correct folded copy of efficientnet_tiny was 1.33e-4 from the model's
# float32 scores, both being 6-7e-5 from the exact (float64) ones. So the folded copy's float32 scores are held to be
# no farther from the exact scores than the model's own float32 scores are, plus TOLERANCE (at most 8.1e-6 more
# was seen, AVX2 or scalar kernels); a wrong fold moves scores by 1e-2 or more. The fold's algebra itself is checked
# in float64, within FLOAT64_TOLERANCE (7.6e-14 seen).
TOLERANCE = 1e-4
FLOAT64_TOLERANCE = 1e-9


def same_scores(model: nn.Module, fast: nn.Module, x: torch.Tensor, shape: tuple[int, ...]) -> None:
    """The folded copy scores ``x`` as the model does: its float32 scores (the path detect runs) no farther from the
    exact ones than the model's float32 scores, plus TOLERANCE; and the same fold made of the model in float64 gives
    the float64 model's scores within FLOAT64_TOLERANCE (the algebra, free of float32 rounding)."""
    exact = copy.deepcopy(model).double()
    fast64 = fold_batchnorm(exact, shape)
    assert fast64 is not None and len(folded(fast64)) == len(folded(fast))
    with torch.inference_mode():
        want, got = model.predict_proba(x).double(), fast.predict_proba(x).double()
        truth, got64 = (torch.sigmoid(m(m.normalize(x))) for m in (exact, fast64))  # predict_proba, kept in float64
    assert float(want.std()) > 1e-2  # scores that differ between inputs: the comparison can fail
    assert bool(((got - truth).abs() <= (want - truth).abs() + TOLERANCE).all())
    assert truth.dtype == torch.float64 and torch.allclose(got64, truth, atol=FLOAT64_TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", ["npr_tiny", "efficientnet_tiny"])
def test_the_folded_copy_gives_the_models_scores(name):
    torch.manual_seed(0)
    model = fakescope.create_model(name)
    size = int(model.preprocess.input_size)
    x = torch.randint(0, 256, (12, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    model = input_dependent(model, x[6:])
    fast = fold_batchnorm(model, (3, size, size))
    assert fast is not None and fast is not model
    assert len(folded(fast)) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    same_scores(model, fast, x[:6], (3, size, size))
    assert all("forward" not in vars(m) for m in model.modules())  # the model's own batch norms are untouched


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_model_with_statistics_of_smooth_images_is_folded(seed):
    """Statistics of smooth images, as a trained model's come from photographs: random pixels then drive the logits
    far out (28-100 here; 1e6 for EfficientNet-B4 with statistics of the speed benchmark's images), where float32
    rounding moved them by more than the whole-model check this replaced allowed (a relative 1e-5), and the model
    was scored unfolded. Each folded layer checked on its own, the copy is folded; its scores on other smooth
    images are the model's."""
    torch.manual_seed(seed)
    model = fakescope.create_model("efficientnet_tiny")
    size = int(model.preprocess.input_size)
    model = input_dependent(model, smooth_images(8, size, seed=1))
    fast = fold_batchnorm(model, (3, size, size))
    assert fast is not None and len(folded(fast)) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    same_scores(model, fast, smooth_images(6, size, seed=9), (3, size, size))


class ConvNorm(Pixels):
    """A convolution and a batch norm with statistics away from their initial values; each test's forward says
    how they are wired."""

    def __init__(self, norm: type[nn.BatchNorm2d] = nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), norm(4)
        self.bn.running_mean.fill_(0.5)
        self.bn.running_var.fill_(4.0)


def test_a_batch_norm_that_computes_something_else_is_not_folded():
    class Doubled(nn.BatchNorm2d):
        def forward(self, x):
            return 2 * super().forward(x)

    class Net(ConvNorm):
        def forward(self, x):
            return self.bn(self.conv(x)).mean(dim=(1, 2, 3))

    assert fold_batchnorm(Net(Doubled).eval(), (3, 8, 8)) is None


def test_a_convolution_whose_output_is_read_twice_is_not_folded():
    class Twice(ConvNorm):
        def forward(self, x):
            y = self.conv(x)
            return (self.bn(y) + y).mean(dim=(1, 2, 3))  # the convolution's output, read by its norm and after

    assert fold_batchnorm(Twice().eval(), (3, 8, 8)) is None


def test_a_convolution_whose_output_a_later_layer_reads_again_is_not_folded():
    class Later(ConvNorm):
        def __init__(self) -> None:
            super().__init__()
            self.other = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.conv(x)
            z = torch.relu(self.bn(y))
            return (self.other(z) * y).mean(dim=(1, 2, 3))  # the convolution's output, read after its norm

    assert fold_batchnorm(Later().eval(), (3, 8, 8)) is None


def test_a_convolution_run_again_without_its_norm_is_not_folded():
    class Again(ConvNorm):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
            self.bn.running_var.fill_(4.0)

        def forward(self, x):
            return self.conv(torch.relu(self.bn(self.conv(x)))).mean(dim=(1, 2, 3))

    assert fold_batchnorm(Again().eval(), (3, 8, 8)) is None


def test_reading_a_shape_between_a_convolution_and_its_norm_does_not_stop_the_folding():
    class Net(ConvNorm):
        def forward(self, x):
            y = self.conv(x)
            assert y.shape[1] == 4 and y.dim() == 4 and y.size(0) == x.size(0)
            return self.bn(y).mean(dim=(1, 2, 3))

    torch.manual_seed(0)
    model = Net().eval()
    fast = fold_batchnorm(model, (3, 8, 8))
    assert fast is not None and folded(fast) == [fast.bn]
    x = model.normalize(torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8))
    with torch.no_grad():
        assert torch.allclose(fast(x), model(x), atol=1e-5, rtol=0)
