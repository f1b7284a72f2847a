"""Model families for horizontal FL: shapes, torchvision parameter counts, weight transport."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from jointly.errors import ConfigError
from jointly.learn.horizontal.models import (
    FAMILIES,
    ModelSpec,
    build_model,
    count_parameters,
    get_weights,
    set_weights,
)
from jointly.learn.horizontal.models.vit import ViTConfig


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


IMAGE_CASES = [
    ("cnn", 1, 8),
    ("cnn", 1, 28),
    ("cnn", 3, 32),
    ("resnet18", 1, 28),
    ("resnet34", 3, 32),
    ("resnet50", 3, 32),
    ("densenet121", 1, 28),
    ("densenet201", 3, 32),
    ("vit_tiny", 1, 28),
    ("vit_small", 3, 32),
]


@pytest.mark.parametrize(("family", "channels", "size"), IMAGE_CASES)
def test_image_families_map_a_batch_to_logits(family: str, channels: int, size: int) -> None:
    torch.manual_seed(0)
    model = build_model(ModelSpec(family, num_classes=7, in_channels=channels, image_size=size))  # type: ignore[arg-type]
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_every_family_is_covered_by_a_shape_test() -> None:
    assert {f for f, _, _ in IMAGE_CASES} | {"mlp"} == set(FAMILIES)


@pytest.mark.parametrize("classes", [1, 3])
def test_mlp_gives_one_logit_for_binary_and_one_per_class_otherwise(classes: int) -> None:
    model = build_model(
        ModelSpec("mlp", num_classes=classes, in_features=64, hidden=(32, 16), options={"dropout": 0.1})
    )
    assert model(torch.randn(2, 64)).shape == (2, classes)
    # 8x8 images are flattened to 64 features
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, classes)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 16), (16, classes)]


TORCHVISION_COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "densenet121": 7_978_856,
    "densenet201": 20_013_928,
    # timm's vit_tiny/small_patch16_224 (same layout: conv patches, class token, pre-norm blocks)
    "vit_tiny": 5_717_416,
    "vit_small": 22_050_664,
}


@pytest.mark.parametrize(("family", "expected"), sorted(TORCHVISION_COUNTS.items()))
def test_imagenet_configuration_has_the_reference_parameter_count(family: str, expected: int) -> None:
    model = build_model(ModelSpec(family, num_classes=1000, in_channels=3, image_size=224))  # type: ignore[arg-type]
    assert count_parameters(model) == expected
    assert getattr(model, "stem_kind", "imagenet") == "imagenet"


@pytest.mark.parametrize("family", ["resnet18", "densenet121"])
def test_small_images_get_the_cifar_stem_and_keep_their_resolution(family: str) -> None:
    small = build_model(ModelSpec(family, num_classes=10, in_channels=3, image_size=32))  # type: ignore[arg-type]
    assert getattr(small, "stem_kind", None) == "cifar"
    assert not any(isinstance(m, nn.MaxPool2d) for m in small.modules())
    forced = build_model(
        ModelSpec(family, num_classes=10, in_channels=3, image_size=32, options={"stem": "imagenet"})  # type: ignore[arg-type]
    )
    assert getattr(forced, "stem_kind", None) == "imagenet"
    assert count_parameters(forced) > count_parameters(small)  # 7x7 stem kernel instead of 3x3


def test_resnet_stem_keeps_32px_maps_until_layer2() -> None:
    model = build_model(ModelSpec("resnet18", num_classes=10, in_channels=3, image_size=32))
    seen: list[tuple[int, ...]] = []
    layer1 = model.get_submodule("layer1")
    layer1.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape)))
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert seen == [(1, 64, 32, 32)]


def test_memory_efficient_densenet_gives_the_same_gradients() -> None:
    grads = []
    for efficient in (True, False):
        torch.manual_seed(3)
        options = {"growth_rate": 4, "bn_size": 2, "memory_efficient": efficient}
        model = build_model(ModelSpec("densenet121", num_classes=3, in_channels=1, image_size=16, options=options))
        model.train()
        x = torch.randn(2, 1, 16, 16)
        model(x).square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) == len(list(model.parameters()))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_cnn_training_step_lowers_the_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = build_model(ModelSpec("cnn", num_classes=10, in_channels=1, image_size=8))
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    losses = []
    for _ in range(15):
        optim.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optim.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        final = loss_fn(model(x), y).item()
    assert final < 0.5 * losses[0]


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec("cnn", num_classes=4, in_channels=1, image_size=8),
        ModelSpec("resnet18", num_classes=4, in_channels=3, image_size=16),
        ModelSpec("vit_tiny", num_classes=4, in_channels=1, image_size=8, options={"depth": 2, "patch_size": 2}),
        ModelSpec("mlp", num_classes=1, in_features=5, hidden=(4,)),
    ],
    ids=lambda s: s.family,
)
def test_get_set_round_trip_copies_parameters_and_buffers(spec: ModelSpec) -> None:
    torch.manual_seed(1)
    source = build_model(spec)
    shape = (3, spec.in_features) if spec.family == "mlp" else (3, spec.in_channels, spec.image_size, spec.image_size)
    source.train()
    source(torch.randn(*shape))  # move BatchNorm running stats away from their initial values
    torch.manual_seed(2)
    target = build_model(spec)

    weights = get_weights(source)
    assert len(weights) == len(source.state_dict())
    assert all(w.dtype == np.float32 for w in weights)
    set_weights(target, weights)
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values(), strict=True):
        assert a.dtype == b.dtype, name
        assert torch.equal(a, b), name
    x = torch.randn(*shape)
    source.eval()
    target.eval()
    with torch.no_grad():
        assert torch.equal(source(x), target(x))
    # the arrays are copies: changing them leaves the model alone
    weights[0][...] = 123.0
    assert not (next(iter(source.state_dict().values())) == 123.0).any()


def test_get_weights_includes_batchnorm_buffers_but_group_norm_has_none() -> None:
    batch = build_model(ModelSpec("cnn", num_classes=2, in_channels=1, image_size=8))
    names = list(batch.state_dict())
    assert any(n.endswith("running_mean") for n in names)
    assert any(n.endswith("num_batches_tracked") for n in names)
    assert len(get_weights(batch)) > len(list(batch.parameters()))
    group = build_model(ModelSpec("cnn", num_classes=2, in_channels=1, image_size=8, options={"norm": "group"}))
    assert len(get_weights(group)) == len(list(group.parameters()))
    assert count_parameters(group) == count_parameters(batch)


def test_averaged_integer_buffers_are_rounded_back() -> None:
    model = build_model(ModelSpec("cnn", num_classes=2, in_channels=1, image_size=8))
    names = list(model.state_dict())
    weights = get_weights(model)
    idx = names.index(next(n for n in names if n.endswith("num_batches_tracked")))
    weights[idx] = np.array(6.6, dtype=np.float32)
    set_weights(model, weights)
    tracked = model.state_dict()[names[idx]]
    assert tracked.dtype == torch.int64
    assert int(tracked) == 7


def test_set_weights_refuses_wrong_count_shape_and_values_and_leaves_model_untouched() -> None:
    model = build_model(ModelSpec("mlp", num_classes=2, in_features=4, hidden=(3,)))
    before = [w.copy() for w in get_weights(model)]
    good = get_weights(model)
    with pytest.raises(ConfigError, match="4 tensors, got 3"):
        set_weights(model, good[:-1])
    with pytest.raises(ConfigError, match=r"net\.0\.weight: expected shape \(3, 4\), got \(4, 3\)"):
        set_weights(model, [good[0].T, *good[1:]])
    bad = [np.zeros_like(w) for w in good]
    bad[-1] = np.array([0.0, np.nan], dtype=np.float32)
    with pytest.raises(ConfigError, match="NaN"):
        set_weights(model, bad)
    with pytest.raises(ConfigError, match="dtype"):
        set_weights(model, [w.astype(str) for w in good])
    for a, b in zip(before, get_weights(model), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ModelSpec("lstm", image_size=8), "unknown family"),  # type: ignore[arg-type]
        (ModelSpec("cnn", in_channels=1), "needs image_size"),
        (ModelSpec("mlp"), "needs in_features"),
        (ModelSpec("mlp", in_features=3, hidden=(4, 0)), "hidden"),
        (ModelSpec("cnn", num_classes=0, image_size=8), "num_classes"),
        (ModelSpec("cnn", image_size=8, options={"depth": 3}), "no options"),
        (ModelSpec("cnn", image_size=8, options={"norm": "layer"}), "norm"),
        (ModelSpec("cnn", image_size=8, options={"widths": 32}), "list of integers"),
        (ModelSpec("resnet18", image_size=32, options={"stem": "big"}), "stem"),
        (ModelSpec("resnet50", image_size=32, options={"zero_init_residual": 1}), "true or false"),
        (ModelSpec("densenet121", image_size=32, options={"drop_rate": 1.5}), "drop_rate"),
        (ModelSpec("vit_tiny", image_size=30), "not divisible by patch_size"),
        (ModelSpec("vit_tiny", image_size=32, options={"patch_size": 5}), "not divisible by patch_size"),
        (ModelSpec("vit_small", image_size=32, options={"heads": 5}), "not divisible by heads"),
    ],
)
def test_build_model_rejects_bad_specs(spec: ModelSpec, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(spec)


def test_spec_from_json_like_values() -> None:
    spec = ModelSpec("cnn", num_classes=3, image_size=8, hidden=[8], options={"widths": [4, 8]})  # type: ignore[arg-type]
    assert spec.hidden == (8,)
    assert spec.options["widths"] == (4, 8)
    same = ModelSpec("cnn", num_classes=3, image_size=8, hidden=(8,), options={"widths": (4, 8)})
    assert spec == same
    assert hash(spec) == hash(same)
    assert spec != ModelSpec("cnn", num_classes=3, image_size=8, hidden=(8,), options={"widths": (4, 16)})
    model = build_model(spec)
    convs = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [4, 8]
    with pytest.raises(ConfigError, match="mapping"):
        ModelSpec("cnn", options=[("widths", 4)])  # type: ignore[arg-type]


def test_vit_config_and_input_size_checks() -> None:
    with pytest.raises(ConfigError, match="divisible"):
        ViTConfig(image_size=28, patch_size=8)
    with pytest.raises(ConfigError, match="depth"):
        ViTConfig(depth=0)
    assert ViTConfig(image_size=28, patch_size=4).num_patches == 49
    model = build_model(ModelSpec("vit_tiny", num_classes=2, image_size=8, options={"depth": 1, "patch_size": 4}))
    with pytest.raises(ConfigError, match="8px"):
        model(torch.randn(1, 1, 16, 16))
