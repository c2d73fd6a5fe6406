import pytest
import torch

from sampling_argmax.models import KeypointChannels, ResNetDeconv, SmallHeatmapNet


def test_resnet_deconv_output_is_input_over_32_times_2_pow_deconv():
    net = ResNetDeconv(depth=18, num_keypoints=5, deconv_channels=16, num_deconv=3)
    assert net(torch.zeros(1, 3, 256, 192)).shape == (1, 5, 64, 48)
    net2 = ResNetDeconv(depth=18, num_keypoints=2, deconv_channels=8, num_deconv=2, in_channels=1)
    assert net2(torch.zeros(2, 1, 128, 64)).shape == (2, 2, 16, 8)


def test_resnet_deconv_takes_one_width_per_deconvolution():
    net = ResNetDeconv(depth=18, num_keypoints=5, deconv_channels=[16, 16, 8], num_deconv=3)
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 5, 16, 16)
    assert net.head[-3].out_channels == 8 and net.final.in_channels == 8
    with pytest.raises(ValueError, match="list of num_deconv=3"):
        ResNetDeconv(depth=18, num_keypoints=5, deconv_channels=[16, 8], num_deconv=3)


def test_resnet_deconv_loads_a_local_torchvision_state_dict(tmp_path):
    from torchvision.models import resnet18

    reference = resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)  # includes fc.*, which must be dropped silently
    net = ResNetDeconv(depth=18, num_keypoints=3, deconv_channels=8, pretrained=str(path))
    assert torch.equal(net.backbone[0].weight, reference.conv1.weight)
    assert torch.equal(net.backbone[7][1].conv2.weight, reference.layer4[1].conv2.weight)


def test_resnet_deconv_rejects_missing_or_mismatched_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained"):
        ResNetDeconv(depth=18, num_keypoints=3, pretrained=str(tmp_path / "nope.pth"))
    from torchvision.models import resnet18

    path = tmp_path / "r18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="does not match"):
        ResNetDeconv(depth=50, num_keypoints=3, pretrained=str(path))
    with pytest.raises(ValueError, match="depth"):
        ResNetDeconv(depth=35, num_keypoints=3)


@pytest.mark.parametrize("dims,grid", [(1, (64,)), (2, (32, 24)), (3, (8, 12, 16))])
def test_small_net_halves_every_side_and_backpropagates(dims, grid):
    net = SmallHeatmapNet(num_keypoints=2, dims=dims, width=4)
    x = torch.randn(2, 1, *grid)
    out = net(x)
    assert out.shape == (2, 2, *(g // 2 for g in grid))
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_small_net_rejects_bad_input():
    net = SmallHeatmapNet(num_keypoints=2, dims=2, width=4)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.zeros(1, 1, 30, 32))
    with pytest.raises(ValueError, match="grid dims"):
        net(torch.zeros(1, 1, 32))
    with pytest.raises(ValueError, match="dims"):
        SmallHeatmapNet(num_keypoints=2, dims=4)


def test_keypoint_channels_groups_maps_per_keypoint():
    net = KeypointChannels(SmallHeatmapNet(num_keypoints=6), channels=3)
    out = net(torch.zeros(1, 1, 32, 32))
    assert out.shape == (1, 2, 3, 16, 16)
    assert torch.equal(out[:, 1, 2], net.model(torch.zeros(1, 1, 32, 32))[:, 5])  # map k * C + c
    with pytest.raises(ValueError, match="num_keypoints = K \\* 4"):
        KeypointChannels(SmallHeatmapNet(num_keypoints=6), channels=4)(torch.zeros(1, 1, 32, 32))


def test_backbones_by_name_and_their_weights(tmp_path):
    from torchvision.models import resnet34

    net = ResNetDeconv(backbone="resnet34", num_keypoints=4, deconv_channels=8)
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 4, 16, 16)
    path = tmp_path / "r34.pth"
    reference = resnet34(weights=None)
    torch.save({"state_dict": reference.state_dict()}, path)  # a wrapped state dict is unwrapped
    loaded = ResNetDeconv(backbone="resnet34", num_keypoints=4, deconv_channels=8, pretrained=str(path))
    assert torch.equal(loaded.backbone[7][2].conv2.weight, reference.layer4[2].conv2.weight)
    with pytest.raises(ValueError, match="does not match backbone 'resnet18'"):
        ResNetDeconv(backbone="resnet18", num_keypoints=4, pretrained=str(path))
    with pytest.raises(ValueError, match="backbone='resnet50' and depth=18 disagree"):
        ResNetDeconv(depth=18, backbone="resnet50")
    with pytest.raises(ValueError, match="num_keypoints=None"):
        ResNetDeconv(depth=18, num_keypoints=None)


def test_timm_backbones_by_name(tmp_path):
    timm = pytest.importorskip("timm")
    with pytest.raises(ValueError, match="backbone 'no_such_net' is neither a torchvision ResNet .* nor a timm model"):
        ResNetDeconv(backbone="no_such_net", num_keypoints=2)
    net = ResNetDeconv(backbone="mobilenetv3_small_050", num_keypoints=3, deconv_channels=8, in_channels=1)
    assert net(torch.zeros(2, 1, 64, 64)).shape == (2, 3, 16, 16)
    # timm's own state dict of the whole model (classifier included) loads into the feature backbone
    whole = timm.create_model("mobilenetv3_small_050", pretrained=False)
    path = tmp_path / "mnv3.pth"
    torch.save(whole.state_dict(), path)
    loaded = ResNetDeconv(backbone="mobilenetv3_small_050", num_keypoints=3, deconv_channels=8, pretrained=str(path))
    assert torch.equal(loaded.backbone.body.conv_stem.weight, whole.conv_stem.weight)
    with pytest.raises(ValueError, match="does not match backbone 'mobilenetv3_small_100'.*other shapes"):
        ResNetDeconv(backbone="mobilenetv3_small_100", num_keypoints=3, pretrained=str(path))
