"""The faster paths compute the same update: optimiser implementations, one backward pass with
parameters stepped inside it, mixed precision, channels-last; their options refuse what cannot apply."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
import torch

import test as test_script
import train
from models import create_model
from models.checkpoint import Checkpoints, safe_load
from models.save_budget import SaveBudget
from options.base_options import saved_options
from options.test_options import TestOptions
from options.train_options import TrainOptions
from tests.helpers import expect_error, make_triplets, snapshot, test_argv, train_argv
from util.errors import UserError

NETS = ("G", "G2", "A", "D")
GENERATORS = ("G", "G2", "A")
OFFICIAL = ("--train_step", "official", "--optimizer_impl", "default")
# One Adam step moves a weight by about lr = 2e-4 whatever its gradient; two implementations of
# the same update agree to far below that (measured: 4e-8), rounding differences only.
ONE_STEP_ATOL = 1e-7


def build(tmp_path, *extra: str, seed: int = 0):
    opt = TrainOptions().parse(train_argv(tmp_path / "data", tmp_path / "ckpt", "m", *extra), save=False)
    torch.manual_seed(seed)
    model = create_model(opt)
    model.setup()
    return model


def batch(seed: int = 0, n: int = 1, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(n, 3, size, size, generator=g) * 2 - 1 for k in "ABC"}


def one_step(model, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(100 + seed)  # the image pool's draws
    model.set_input(batch(seed))
    model.optimize_parameters()
    return {n: {k: v.detach().clone() for k, v in net.state_dict().items()} for n, net in model.nets.items()}


def assert_same_weights(a: dict, b: dict, atol: float = 0.0) -> None:
    for name in a:
        for key in a[name]:
            torch.testing.assert_close(a[name][key], b[name][key], rtol=0, atol=atol, msg=f"{name}.{key}")


# ---------------------------------------------------------------- the same update, faster
@pytest.mark.parametrize("impl", ["fused", "foreach", "auto"])
def test_optimizer_implementations_give_the_default_update_to_rounding(tmp_path, impl):
    reference = one_step(build(tmp_path, *OFFICIAL))
    other = build(tmp_path, "--train_step", "official", "--optimizer_impl", impl)
    assert all(
        bool(o.defaults.get("fused")) == (impl in ("fused", "auto")) for o in other.optimizers.values()
    )
    assert_same_weights(one_step(other), reference, atol=ONE_STEP_ATOL)


def test_the_fast_default_step_is_the_official_update(tmp_path):
    """Default options (one backward pass, parameters stepped in it, fused Adam) against the
    official code's step (two backward passes, then the default Adam): the same one-step update."""
    reference = one_step(build(tmp_path, *OFFICIAL))
    model = build(tmp_path)
    assert model.opt.train_step == "fast" and model.opt.optimizer_impl == "auto"
    assert_same_weights(one_step(model), reference, atol=ONE_STEP_ATOL)
    # Every gradient was freed once used: the networks' gradients never all exist at once.
    assert all(p.grad is None for name in GENERATORS for p in model.nets[name].parameters())


def test_one_backward_pass_gives_the_official_gradients(tmp_path):
    """loss_G2 + loss_G back-propagated once equals loss_G2's pass plus loss_G's pass (float rounding)."""
    model = build(tmp_path, *OFFICIAL)
    model.set_input(batch(1))

    def grads(joint: bool) -> dict[str, torch.Tensor]:
        for net in model.nets.values():
            net.zero_grad(set_to_none=True)
        model.forward()
        g = model.generator_losses()
        loss_G2 = g["G2_L1"] + g["G2_SSIM"]
        loss_G = g["G_GAN"] + g["G_SSIM"] + g["G_attn"] + g["G_L1"]
        if joint:
            (loss_G2 + loss_G).backward()
        else:
            loss_G2.backward(retain_graph=True)
            loss_G.backward()
        return {f"{n}.{k}": p.grad.clone() for n in GENERATORS for k, p in model.nets[n].named_parameters()}

    official, joint = grads(False), grads(True)
    for key, grad in official.items():
        torch.testing.assert_close(joint[key], grad, rtol=1e-4, atol=1e-6, msg=key)


def test_stepping_inside_the_backward_pass_is_bit_identical_to_stepping_after(tmp_path):
    fast = one_step(build(tmp_path, "--optimizer_impl", "fused"))
    model = build(tmp_path, "--train_step", "official", "--optimizer_impl", "fused")
    model.backward_and_step = lambda loss, names: _backward_then_step(model, loss, names)
    model.opt.train_step = "fast"  # the joint loss, stepped after its backward pass
    assert_same_weights(one_step(model), fast)


def _backward_then_step(model, loss, names) -> None:
    for name in names:
        model.optimizers[name].zero_grad(set_to_none=True)
    loss.backward()
    for name in names:
        model.optimizers[name].step()


def test_fast_training_resumes_exactly_and_saves_the_same_state_layout(tmp_path):
    flags = ("--pool_size", "2", "--lr_policy", "step")
    model = build(tmp_path, *flags)
    for i in range(2):
        one_step(model, i)
    path = model.checkpoints.save(model, "latest", {"epoch": 0, "total_iters": 2}, saved_options(model.opt))
    state = safe_load(path)
    official = build(tmp_path, *OFFICIAL)
    one_step(official)
    for name in NETS:
        saved = state["optimizers"][name]
        assert (
            saved["param_groups"][0]["params"]
            == official.optimizers[name].state_dict()["param_groups"][0]["params"]
        )
        assert set(saved["state"]) == set(official.optimizers[name].state_dict()["state"])
    other = build(tmp_path, *flags, seed=5)
    other.checkpoints.load_training_state(other, "latest", other.opt)
    assert_same_weights(one_step(other, 7), one_step(model, 7))


# ---------------------------------------------------------------- make_optimizer
def test_make_optimizer_picks_and_refuses_implementations(tmp_path):
    model = build(tmp_path)
    params = list(model.nets["D"].parameters())
    assert model.make_optimizer(params, lr=1e-3).defaults["fused"] is True  # auto, Adam on the CPU
    assert model.make_optimizer(params, torch.optim.AdamW, lr=1e-3).defaults["fused"] is True
    rms = model.make_optimizer(params, torch.optim.RMSprop, lr=1e-3)  # no fused kernel: the default
    assert isinstance(rms, torch.optim.RMSprop) and not rms.defaults.get("foreach")
    model.opt.optimizer_impl = "fused"
    with pytest.raises(UserError, match="RMSprop has no fused implementation"):
        model.make_optimizer(params, torch.optim.RMSprop, lr=1e-3)
    model.opt.optimizer_impl = "foreach"
    assert model.make_optimizer(params, torch.optim.RMSprop, lr=1e-3).defaults["foreach"] is True


# ---------------------------------------------------------------- mixed precision, layout
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_on_the_cpu(tmp_path, amp):
    model = build(tmp_path, "--amp", amp)
    before = {k: v.clone() for k, v in model.nets["G"].state_dict().items()}
    model.set_input(batch())
    with torch.autocast("cpu", dtype=model.amp_dtype):  # the forward runs in the low precision
        assert model.nets["A"](model.real_A).dtype == model.amp_dtype
    # float16: the scaler starts at 2**16 and halves after each overflowing (skipped) step.
    for _ in range(30):
        losses = model.optimize_parameters()
        assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in losses.values())
        if any(not torch.equal(v, before[k]) for k, v in model.nets["G"].state_dict().items()):
            break
    else:
        pytest.fail("30 steps changed no weight of G")
    assert all(p.dtype == torch.float32 for p in model.nets["G"].parameters())
    assert (model.grad_scaler is not None) == (amp == "fp16")
    state = model.training_state()
    assert ("grad_scaler" in state) == (amp == "fp16")
    if amp == "fp16":
        scale = model.grad_scaler.get_scale()
        other = build(tmp_path, "--amp", amp)
        other.load_training_state(state, "memory")
        assert other.grad_scaler.get_scale() == scale


def test_channels_last_is_the_same_computation(tmp_path):
    plain, nhwc = build(tmp_path), build(tmp_path, "--channels_last")
    weight = nhwc.nets["G"].model.model[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    data = batch(3, n=2)
    for model in (plain, nhwc):
        model.set_input(data)
    assert nhwc.real_A.is_contiguous(memory_format=torch.channels_last)
    a, b = plain.test(), nhwc.test()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
    # Other convolution kernels: gradients agree to ~1e-6 relative, so does the update, except where
    # a gradient is zero but for rounding (D's biases feed instance norms, which remove them): Adam's
    # first step moves those by +-lr either way.
    after_nhwc, after_plain = one_step(nhwc, 4), one_step(plain, 4)
    for net in (after_nhwc, after_plain):
        net["D"] = {
            k: v for k, v in net["D"].items() if k not in ("model.2.bias", "model.5.bias", "model.8.bias")
        }
    assert_same_weights(after_nhwc, after_plain, atol=1e-6)


def test_test_options_accept_the_speed_options(tmp_path):
    argv = test_argv(
        tmp_path / "data", tmp_path / "ckpt", tmp_path / "res", "m", "--amp", "bf16", "--channels_last"
    )
    opt = TestOptions().parse(argv, save=False)
    assert opt.amp == "bf16" and opt.channels_last


# ---------------------------------------------------------------- refusals
@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusals are for runs on the CPU")
@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (("--tf32", "on"), ("--tf32 on is a CUDA setting", "cpu", "drop --tf32")),
        (("--tf32", "off"), ("--tf32 off is a CUDA setting",)),
        (("--cudnn_benchmark",), ("--cudnn_benchmark is a CUDA setting", "drop --cudnn_benchmark")),
        (("--save_budget", "0"), ("--save_budget must be in (0, 1], got 0.0",)),
        (("--save_budget", "1.5"), ("--save_budget must be in (0, 1]",)),
        (("--amp", "fp8"), ("argument --amp: invalid choice",)),
        (("--optimizer_impl", "magic"), ("argument --optimizer_impl: invalid choice",)),
        (("--train_step", "faster"), ("argument --train_step: invalid choice",)),
    ],
)
def test_speed_options_that_cannot_apply_are_refused(tmp_path, capfd, extra, fragments):
    make_triplets(tmp_path / "data", "train", n=1)
    expect_error(capfd, train.main, train_argv(tmp_path / "data", tmp_path / "ckpt", "x", *extra), *fragments)
    assert not (tmp_path / "ckpt" / "x").exists() or not list((tmp_path / "ckpt" / "x").glob("*.pth"))


# ---------------------------------------------------------------- CUDA
needs_cuda = [
    pytest.mark.needs_cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
@pytest.mark.needs_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fast_gpu_options_train_on_cuda(tmp_path, amp):
    extra = ("--gpu_ids", "0", "--amp", amp, "--channels_last", "--tf32", "on", "--cudnn_benchmark")
    model = build(tmp_path, *extra)
    assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32
    for i in range(2):
        losses = (model.set_input(batch(i)), model.optimize_parameters())[1]
        assert all(torch.isfinite(v) for v in losses.values()), losses
    build(tmp_path, "--gpu_ids", "0")  # the defaults put every switch back
    assert not torch.backends.cudnn.benchmark and not torch.backends.cuda.matmul.allow_tf32


@pytest.mark.needs_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fast_step_is_the_official_update_on_cuda(tmp_path):
    strict = ("--gpu_ids", "0", "--tf32", "off")
    reference = one_step(build(tmp_path, *strict, *OFFICIAL))
    assert_same_weights(one_step(build(tmp_path, *strict)), reference, atol=ONE_STEP_ATOL)


# ---------------------------------------------------------------- the cost of saving
def test_save_budget_spaces_optional_saves_by_their_cost():
    now = [0.0]
    budget = SaveBudget(0.1, clock=lambda: now[0])
    assert budget.due()  # the first save is always due: a run killed after it can be resumed
    with budget.timed():
        now[0] += 2.0  # a 2 s save
    assert budget.last_cost == 2.0
    now[0] += 17.9
    assert not budget.due()  # 2 s of saving in under 20 s would exceed 10%
    now[0] += 0.2
    assert budget.due()
    assert SaveBudget(1.0, clock=lambda: now[0]).due()
    with pytest.raises(UserError, match="--save_budget must be in"):
        SaveBudget(0.0)


def test_train_saves_the_state_only_when_due_and_epoch_weights_always(tmp_path, monkeypatch):
    """Epoch checkpoints (--save_epoch_freq) are weights; the training state ('latest') is written
    when the budget allows and after the last epoch, with the epoch weights then linked to it."""
    make_triplets(tmp_path / "data", "train", n=2)
    saved: list[dict] = []
    real_save = Checkpoints.save

    def recording_save(self, model, label, progress, options):
        saved.append(dict(progress))
        return real_save(self, model, label, progress, options)

    monkeypatch.setattr(Checkpoints, "save", recording_save)
    due = iter([False, False, True, False])  # epochs 1-4; epoch 5 is the last: always
    monkeypatch.setattr(SaveBudget, "due", lambda self: next(due))
    argv = train_argv(tmp_path / "data", tmp_path / "ckpt", "b", "--n_epochs", "5", "--save_epoch_freq", "2")
    assert train.main(argv) == 0
    assert [p["epoch"] for p in saved] == [3, 5]
    exp = tmp_path / "ckpt" / "b"
    assert sorted(p.name for p in exp.glob("*_net_G.pth")) == [
        "2_net_G.pth",
        "4_net_G.pth",
        "5_net_G.pth",
        "latest_net_G.pth",
    ]
    # Epoch 4's weights were written on their own, 'latest' kept epoch 3's state and weights until
    # the last epoch replaced both.
    state = safe_load(exp / "latest_train_state.pth")
    assert state["progress"]["epoch"] == 5
    g4, g5 = safe_load(exp / "4_net_G.pth"), safe_load(exp / "5_net_G.pth")
    latest = safe_load(exp / "latest_net_G.pth")
    assert all(torch.equal(g5[k], latest[k]) for k in g5)
    assert not all(torch.equal(g4[k], latest[k]) for k in g4)


# ---------------------------------------------------------------- test.py: overlapped writing
class _InlineExecutor:
    """A stand-in for the writer thread: runs each task at once, in the caller's thread."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def submit(self, fn, *args, **kwargs):
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("speed_test")
    make_triplets(root / "data", "train", n=2)
    make_triplets(root / "data", "test", n=5, seed=1)
    assert train.main(train_argv(root / "data", root / "ckpt", "t")) == 0
    return root


def results_of(root, tag: str, *extra: str) -> dict[str, bytes]:
    results = root / f"results_{tag}"
    assert test_script.main(test_argv(root / "data", root / "ckpt", results, "t", *extra)) == 0
    out = snapshot(results / "t" / "test_latest")
    return {k: v for k, v in out.items() if not k.startswith("test_opt")}  # options name the run


def test_test_py_outputs_are_byte_identical_with_overlapped_writing_and_batches(tiny_experiment, monkeypatch):
    threaded = results_of(tiny_experiment, "threaded")
    batched = results_of(tiny_experiment, "batched", "--batch_size", "3")
    monkeypatch.setattr(test_script, "ThreadPoolExecutor", _InlineExecutor)
    sequential = results_of(tiny_experiment, "sequential")
    assert sum(k.startswith("images/") for k in sequential) == 5 * 8  # 8 visuals per image
    assert {"index.html", "metrics_per_image.csv", "metrics_summary.json"} <= set(sequential)
    assert threaded == sequential
    assert batched == sequential


def test_a_failure_while_writing_stops_test_py_with_one_line(tiny_experiment, monkeypatch, capfd):
    def full_disk(*args, **kwargs):
        raise UserError("could not write: No space left on device")

    monkeypatch.setattr(test_script, "save_image", full_disk)
    results = tiny_experiment / "results_fail"
    expect_error(
        capfd,
        test_script.main,
        test_argv(tiny_experiment / "data", tiny_experiment / "ckpt", results, "t"),
        "No space",
    )
