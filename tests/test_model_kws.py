"""model=kws_cnn: TC-ResNet (Choi et al. 2019), layer for layer as the authors' code builds it."""

import pytest
import torch

from fedsim.config import ConfigError
from fedsim.models import TCResNet, build_model
from tests.option_files import option_node, option_settings


def tc_resnet(input_shape=(1, 40, 98), num_classes=12, **settings) -> TCResNet:
    return TCResNet(input_shape, num_classes, **option_settings("model", "kws_cnn", **settings))


def test_tc_resnet8_and_14_have_the_weights_counted_by_hand():
    # TC-ResNet8 on 40 bins, 12 classes: conv 3 40->16 (1,920); blocks 16->24, 24->32, 32->48 of two conv 9
    # and a 1x1 shortcut (9,024 + 16,896 + 36,096); linear 48->12 without bias (576); BatchNorm scale and
    # shift 2 x (16 + 3 x 24 + 3 x 32 + 3 x 48) = 656: 65,168 (the paper's "66K")
    assert sum(p.numel() for p in tc_resnet().parameters()) == 65_168
    # TC-ResNet14 adds a block at each width without stride or shortcut: 24 (10,368 + 96), 32 (18,432 + 128),
    # 48 (41,472 + 192): 135,856 (the paper's "137K")
    fourteen = tc_resnet(channels=[16, 24, 24, 32, 32, 48, 48])
    assert sum(p.numel() for p in fourteen.parameters()) == 135_856


def test_blocks_that_widen_halve_the_frames_and_the_logits_come_from_the_mean_over_time():
    model = tc_resnet().eval()
    lengths = []
    for block in model.blocks:
        block.register_forward_hook(lambda module, args, out: lengths.append(out.shape[-1]))
    out = model(torch.randn(5, 1, 40, 98))
    assert out.shape == (5, 12)
    assert lengths == [49, 25, 13]  # stride 2 with 'same' padding: ceil(98 / 2), ceil(49 / 2), ceil(25 / 2)


def test_the_width_multiplier_scales_every_width_as_the_authors_int_does():
    model = tc_resnet(width_multiplier=1.5)
    assert [model.stem[0].out_channels] + [block.conv2.out_channels for block in model.blocks] == [24, 36, 48, 72]


def test_frequency_bins_are_the_channels_of_a_2d_or_one_channel_input():
    flat = TCResNet((40, 98), 12, **option_settings("model", "kws_cnn"))
    assert flat.stem[0].in_channels == 40
    assert flat.eval()(torch.randn(2, 40, 98)).shape == (2, 12)
    # any number of frames: the average pooling takes them all
    assert tc_resnet().eval()(torch.randn(2, 1, 40, 61)).shape == (2, 12)


def test_an_image_input_is_refused_as_a_shape_mismatch():
    with pytest.raises(ConfigError) as raised:
        build_model(option_node("model", "kws_cnn"), (3, 32, 32), 10, seed=0)
    assert str(raised.value).startswith("model TCResNet does not fit the dataset's input shape (3, 32, 32): TC-ResNet needs")


@pytest.fixture
def one_thread():
    # a second intra-op thread buys nothing at this size, and on a busy machine it makes a step 80 times slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_it_learns_to_tell_a_low_tone_from_a_high_one(one_thread):
    torch.manual_seed(0)
    x = torch.full((64, 1, 40, 98), -10.0)
    y = torch.arange(64) % 2
    x[y == 0, 0, 5] = 0.0  # a low band lit in every frame
    x[y == 1, 0, 30] = 0.0  # or a high one
    x = x + 0.5 * torch.randn_like(x)
    model = tc_resnet(num_classes=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(30):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert (model.eval()(x).argmax(dim=1) == y).all()
