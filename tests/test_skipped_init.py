"""Building networks without their random initialisation where the weights are loaded right
after (test.py, predict.py), and keeping it where random numbers follow (dropout in train mode)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tests.helpers  # noqa: F401  (the suite's single-thread policy)
from models import networks


def test_skipped_init_draws_nothing_and_restores_the_initialisers():
    from models.networks.init import skipped_init

    originals = {name: getattr(nn.init, name) for name in ("kaiming_uniform_", "normal_", "xavier_normal_")}
    state = torch.random.get_rng_state()
    with pytest.raises(RuntimeError, match="inside"):
        with skipped_init():
            networks.define_G(3, 3, ngf=4, netG="unet_32", init_type="normal", init_gain=0.02)
            assert torch.equal(torch.random.get_rng_state(), state)  # no random number drawn
            raise RuntimeError("inside")
    assert all(getattr(nn.init, name) is fn for name, fn in originals.items())
    networks.define_G(3, 3, ngf=4, netG="unet_32", init_type="normal", init_gain=0.02)
    assert not torch.equal(torch.random.get_rng_state(), state)  # initialising again


def test_weights_follow_is_refused_for_training(tmp_path):
    import models
    from options.train_options import TrainOptions
    from tests.helpers import train_argv

    opt = TrainOptions().parse(train_argv(tmp_path, tmp_path), save=False)
    with pytest.raises(ValueError, match="test-mode"):
        models.create_model(opt, weights_follow=True)


@pytest.mark.parametrize(
    "extra, draws",
    [([], False), (["--eval"], False), (["--dropout"], True), (["--dropout", "--eval"], False)],
)
def test_weights_follow_keeps_the_initialisation_only_where_random_numbers_follow(tmp_path, extra, draws):
    """A test-mode build skips the initialisation (no random number drawn) unless the networks
    draw random numbers as they run (dropout in train mode): then it draws exactly what a build
    that initialises draws, so dropout's draws come out as they did."""
    import models
    from options.test_options import TestOptions
    from tests.helpers import TINY

    argv = ["--dataroot", str(tmp_path), "--name", "x", "--checkpoints_dir", str(tmp_path)]
    # unet_64: the smallest U-Net with dropout blocks (num_downs - 5 of them).
    opt = TestOptions().parse(
        [
            *argv,
            *TINY,
            "--netG",
            "unet_64",
            "--load_size",
            "64",
            "--crop_size",
            "64",
            "--model",
            "pix2pix_attn",
            *extra,
        ],
        save=False,
    )
    torch.manual_seed(3)
    models.create_model(opt)
    initialised = torch.random.get_rng_state()
    torch.manual_seed(3)
    model = models.create_model(opt, weights_follow=True)
    state = torch.random.get_rng_state()
    if not opt.eval:
        assert model.infer_draws_random_numbers() is draws
    assert torch.equal(state, initialised) is draws
    torch.manual_seed(3)
    assert torch.equal(state, torch.random.get_rng_state()) is not draws


def test_draws_random_numbers_sees_dropout_rrelu_and_stochastic_depth():
    from models.networks.glf_cr_blocks import DenseSwinLayer
    from models.networks.init import draws_random_numbers

    assert draws_random_numbers(nn.Sequential(nn.Conv2d(1, 1, 1), nn.Dropout(0.5)))
    assert not draws_random_numbers(nn.Sequential(nn.Conv2d(1, 1, 1), nn.Dropout(0.0)))
    assert not draws_random_numbers(nn.Sequential(nn.Dropout2d(0.5)).eval())
    assert draws_random_numbers(nn.RReLU()) and not draws_random_numbers(nn.RReLU().eval())
    block = DenseSwinLayer(in_ch=4, growth=4, heads=1, window=4, shifted=False, mlp_ratio=2.0, drop_path=0.1)
    assert draws_random_numbers(block) and not draws_random_numbers(block.eval())
    still = DenseSwinLayer(in_ch=4, growth=4, heads=1, window=4, shifted=False, mlp_ratio=2.0, drop_path=0.0)
    assert not draws_random_numbers(still)


def test_a_model_that_says_its_infer_draws_keeps_the_initialisation(tmp_path, monkeypatch):
    """Noise drawn in ``infer`` itself (not by a module) is declared by the model; the build then
    draws what an initialised build draws."""
    import models
    from options.test_options import TestOptions
    from tests.helpers import TINY

    argv = ["--dataroot", str(tmp_path), "--name", "x", "--checkpoints_dir", str(tmp_path), *TINY]
    opt = TestOptions().parse(argv, save=False)
    model_class = models.find_model_using_name(opt.model)
    monkeypatch.setattr(model_class, "infer_draws_random_numbers", lambda self: True)
    torch.manual_seed(3)
    models.create_model(opt)
    initialised = torch.random.get_rng_state()
    torch.manual_seed(3)
    models.create_model(opt, weights_follow=True)
    assert torch.equal(torch.random.get_rng_state(), initialised)
