"""Tests for the classic models (McMahan et al. 2017, logistic regression) and build_model."""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from fedsim.config import ConfigError
from fedsim.models import CNN, CNN1D, MLP, CharLSTM, LeNet5, LogisticRegression, ResNet18, build_model
from tests.conftest import compose_config
from tests.option_files import option_settings

IMAGE_SHAPES = [(1, 8, 8), (1, 28, 28)]
ALL_SHAPES = [*IMAGE_SHAPES, (60,)]


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    wa, wb = weights(a), weights(b)
    return len(wa) == len(wb) and all(torch.equal(x, y) for x, y in zip(wa, wb))


class ThreeOutputs(nn.Module):
    """A model that ignores num_classes and always produces three logits."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(int(torch.tensor(input_shape).prod()), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


# --- output shapes -----------------------------------------------------------------------


@pytest.mark.parametrize("input_shape", ALL_SHAPES)
@pytest.mark.parametrize(("option", "model_class"), [("logreg", LogisticRegression), ("mlp", MLP)])
def test_flat_models_output_one_logit_per_class(option, model_class, input_shape):
    model = model_class(input_shape, num_classes=7, **option_settings("model", option))
    out = model(torch.randn(3, *input_shape))
    assert out.shape == (3, 7)


@pytest.mark.parametrize("input_shape", IMAGE_SHAPES)
def test_cnn_outputs_one_logit_per_class(input_shape):
    model = CNN(input_shape, num_classes=10, **option_settings("model", "cnn"))
    out = model(torch.randn(4, *input_shape))
    assert out.shape == (4, 10)


def test_logistic_regression_is_one_linear_map_of_the_flattened_input():
    model = LogisticRegression((1, 8, 8), num_classes=10)
    # 64 inputs x 10 classes + 10 biases
    assert num_parameters(model) == 64 * 10 + 10
    x = torch.randn(5, 1, 8, 8)
    expected = x.reshape(5, 64) @ model.linear.weight.T + model.linear.bias
    torch.testing.assert_close(model(x), expected)


def test_mlp_hidden_sizes_set_the_layers():
    model = MLP((60,), num_classes=10, hidden_sizes=[32])
    # (60*32 + 32) + (32*10 + 10)
    assert num_parameters(model) == 60 * 32 + 32 + 32 * 10 + 10


# --- parameter counts of McMahan et al. (2017) ---------------------------------------------


def test_2nn_on_mnist_has_199210_parameters():
    # 784 -> 200 -> 200 -> 10, weights plus biases:
    #   784*200 + 200 = 157,000
    #   200*200 + 200 =  40,200
    #   200*10  + 10  =   2,010
    #   total         = 199,210
    model = MLP((784,), num_classes=10, hidden_sizes=[200, 200])
    assert num_parameters(model) == 199_210
    # the flattened image gives the same network
    assert num_parameters(MLP((1, 28, 28), num_classes=10, hidden_sizes=[200, 200])) == 199_210


def test_cnn_on_mnist_has_1663370_parameters():
    # conv 5x5, 1 -> 32 channels:  5*5*1*32  + 32  =       832
    # conv 5x5, 32 -> 64 channels: 5*5*32*64 + 64  =    51,264
    # two 2x2 poolings: 28 -> 14 -> 7, so 7*7*64 = 3,136 features
    # dense 3136 -> 512:           3136*512 + 512  = 1,606,144
    # dense 512 -> 10:             512*10 + 10     =     5,130
    # total                                        = 1,663,370
    # (the settings of conf/model/cnn.yaml: the paper's CNN is the shipped default)
    model = CNN((1, 28, 28), num_classes=10, **option_settings("model", "cnn"))
    assert num_parameters(model) == 1_663_370


def test_lenet5_on_28x28x1_has_44426_parameters():
    # conv 5x5, 1 -> 6 channels:   5*5*1*6  + 6   =    156   (28 -> 24, pooled to 12)
    # conv 5x5, 6 -> 16 channels:  5*5*6*16 + 16  =  2,416   (12 -> 8, pooled to 4)
    # dense 16*4*4 = 256 -> 120:   256*120 + 120  = 30,840
    # dense 120 -> 84:             120*84 + 84    = 10,164
    # dense 84 -> 10:              84*10 + 10     =    850
    # total                                       = 44,426
    model = LeNet5((1, 28, 28), num_classes=10)
    assert num_parameters(model) == 44_426
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_lenet5_on_32x32x3_has_62006_parameters():
    # conv 5x5, 3 -> 6 channels:   5*5*3*6  + 6   =    456   (32 -> 28, pooled to 14)
    # conv 5x5, 6 -> 16 channels:  5*5*6*16 + 16  =  2,416   (14 -> 10, pooled to 5)
    # dense 16*5*5 = 400 -> 120:   400*120 + 120  = 48,120
    # dense 120 -> 84:             120*84 + 84    = 10,164
    # dense 84 -> 10:              84*10 + 10     =    850
    # total                                       = 62,006
    model = LeNet5((3, 32, 32), num_classes=10)
    assert num_parameters(model) == 62_006
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)


def test_lenet5_computes_niid_benchs_cnn():
    # NIID-Bench's SimpleCNNMNIST (and Flower's niid_bench CNNMnist), written out as that model.py writes it
    model = LeNet5((1, 28, 28), num_classes=10)
    layers = dict(model.named_children())
    x = torch.randn(4, 1, 28, 28)
    h = nn.functional.max_pool2d(torch.relu(layers["conv1"](x)), 2, 2)
    h = nn.functional.max_pool2d(torch.relu(layers["conv2"](h)), 2, 2)
    h = h.view(-1, 16 * 4 * 4)
    h = torch.relu(layers["fc2"](torch.relu(layers["fc1"](h))))
    torch.testing.assert_close(model(x), layers["fc3"](h))
    assert [name for name, _ in model.named_parameters()] == [
        f"{layer}.{kind}" for layer in ("conv1", "conv2", "fc1", "fc2", "fc3") for kind in ("weight", "bias")
    ]
    assert model.conv1.padding == (0, 0) and model.conv2.padding == (0, 0)


def test_lenet5_on_too_small_images_is_a_config_error():
    with pytest.raises(ConfigError, match=r"LeNet5 does not fit the dataset's input shape \(1, 8, 8\).*16x16"):
        build_model(cfg("fedsim.models.LeNet5"), (1, 8, 8), 10, seed=0)


def test_cnn_rejects_flat_input():
    with pytest.raises(ValueError, match=r"\(60,\)"):
        CNN((60,), num_classes=10, **option_settings("model", "cnn"))


# --- build_model ---------------------------------------------------------------------------


def cfg(target: str, **kwargs):
    return OmegaConf.create({"_target_": target, **kwargs})


MLP_CFG = cfg("fedsim.models.MLP", hidden_sizes=[16])


def test_build_model_same_seed_gives_identical_weights():
    a = build_model(MLP_CFG, (1, 8, 8), 10, seed=3)
    b = build_model(MLP_CFG, (1, 8, 8), 10, seed=3)
    assert same_weights(a, b)


def test_build_model_other_seed_gives_different_weights():
    a = build_model(MLP_CFG, (1, 8, 8), 10, seed=3)
    b = build_model(MLP_CFG, (1, 8, 8), 10, seed=4)
    assert not any(torch.equal(x, y) for x, y in zip(weights(a), weights(b)))


def test_build_model_weights_are_those_of_the_seeded_constructor():
    torch.manual_seed(11)
    expected = MLP((1, 8, 8), 10, hidden_sizes=[16])
    built = build_model(MLP_CFG, (1, 8, 8), 10, seed=11)
    assert same_weights(built, expected)


def test_build_model_leaves_the_global_torch_rng_state_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    build_model(MLP_CFG, (1, 8, 8), 10, seed=0)
    build_model(cfg("fedsim.models.CNN", channels=[4, 8], hidden_size=16, batch_norm=False), (1, 8, 8), 10, seed=5)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("input_shape", [(1, 8, 8), (60,)])
def test_build_model_returns_the_configured_class_with_its_arguments(input_shape):
    model = build_model(cfg("fedsim.models.LogisticRegression"), input_shape, 4, seed=0)
    assert isinstance(model, LogisticRegression)
    assert model.linear.weight.shape == (4, torch.tensor(input_shape).prod().item())


def test_build_model_cnn_on_flat_input_is_a_config_error_naming_model_and_shape():
    with pytest.raises(ConfigError) as info:
        build_model(cfg("fedsim.models.CNN", **option_settings("model", "cnn")), (60,), 10, seed=0)
    message = str(info.value)
    assert "CNN" in message
    assert "(60,)" in message


def test_build_model_cnn_on_too_small_image_is_a_config_error():
    # two poolings need at least 4x4
    with pytest.raises(ConfigError) as info:
        build_model(cfg("fedsim.models.CNN", **option_settings("model", "cnn")), (1, 3, 3), 10, seed=0)
    assert "CNN" in str(info.value)
    assert "(1, 3, 3)" in str(info.value)


def test_build_model_wrong_number_of_outputs_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        build_model(cfg(f"{__name__}.ThreeOutputs"), (60,), 10, seed=0)
    message = str(info.value)
    assert "ThreeOutputs" in message
    assert "10" in message
    # the same model with the matching class count builds
    assert build_model(cfg(f"{__name__}.ThreeOutputs"), (60,), 3, seed=0)(torch.zeros(1, 60)).shape == (1, 3)


@pytest.mark.parametrize(("option", "model_class"), [("logreg", LogisticRegression), ("mlp", MLP), ("cnn", CNN)])
def test_every_shipped_model_option_builds_for_digits(option, model_class):
    model_cfg = compose_config(f"model={option}", tiny=False).model
    model = build_model(model_cfg, (1, 8, 8), 10, seed=0)
    assert type(model) is model_class
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    if option == "cnn":
        with pytest.raises(ConfigError, match=r"CNN.*\(60,\)"):
            build_model(model_cfg, (60,), 10, seed=0)
    else:
        assert build_model(model_cfg, (60,), 10, seed=0)(torch.zeros(3, 60)).shape == (3, 10)


# --- models for MNIST-1D, Shakespeare and CIFAR-10 -----------------------------------------


def test_cnn1d_on_mnist1d_has_5210_parameters():
    # conv k5, 1 -> 25:  5*1*25 + 25  =   150   (length 40 -> (40+2-5)//2+1 = 19)
    # conv k3, 25 -> 25: 3*25*25 + 25 = 1,900   (19 -> 10)
    # conv k3, 25 -> 25: 3*25*25 + 25 = 1,900   (10 -> 5)
    # linear 25*5 -> 10: 125*10 + 10  = 1,260
    # total                           = 5,210
    model = CNN1D((40,), num_classes=10, **option_settings("model", "cnn1d"))
    assert num_parameters(model) == 5_210
    assert model(torch.randn(3, 40)).shape == (3, 10)
    assert CNN1D((2, 40), num_classes=10, **option_settings("model", "cnn1d"))(torch.randn(3, 2, 40)).shape == (3, 10)


def test_leaf_lstm_has_819920_parameters_and_takes_token_ids():
    # embedding 80 x 8                          =     640
    # LSTM layer 1: 4*256*(8 + 256) + 2*4*256   = 272,384 (torch keeps two bias vectors)
    # LSTM layer 2: 4*256*(256 + 256) + 2*4*256 = 526,336
    # linear 256 -> 80: 256*80 + 80             =  20,560
    # total                                     = 819,920
    model = CharLSTM((80,), num_classes=80, **option_settings("model", "lstm"))
    assert num_parameters(model) == 819_920
    assert model(torch.randint(0, 80, (4, 80))).shape == (4, 80)


def test_build_model_feeds_the_lstm_token_ids():
    model = build_model(compose_config("model=lstm", tiny=False).model, (80,), 80, seed=0, input_dtype="int64")
    assert isinstance(model, CharLSTM)
    with pytest.raises(ConfigError, match=r"CharLSTM.*\(1, 8, 8\)"):
        build_model(compose_config("model=lstm", tiny=False).model, (1, 8, 8), 10, seed=0)
    with pytest.raises(ConfigError, match=r"^model CharLSTM takes token ids but the dataset gives real-valued features"):
        build_model(compose_config("model=lstm", tiny=False).model, (80,), 80, seed=0)


def test_resnet18_has_11173962_parameters_and_only_groupnorm():
    # the CIFAR ResNet-18 (3x3 stem, no max pooling): 11,173,962 parameters with BatchNorm,
    # and GroupNorm has the same per-channel weight and bias
    model = ResNet18((3, 32, 32), num_classes=10, **option_settings("model", "resnet18"))
    assert num_parameters(model) == 11_173_962
    norms = [m for m in model.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]
    assert norms and all(isinstance(m, nn.GroupNorm) and m.num_groups == 2 for m in norms)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ConfigError, match=r"^model\.num_groups=3 must divide every stage's width"):
        ResNet18((3, 32, 32), 10, num_groups=3)


def test_a_model_for_real_values_on_token_ids_is_one_sentence():
    with pytest.raises(ConfigError) as raised:
        build_model(MLP_CFG, (80,), 80, seed=0, input_dtype="int64")
    assert str(raised.value) == (
        "model MLP takes real-valued features but the dataset gives token ids; choose a model for this dataset."
    )
