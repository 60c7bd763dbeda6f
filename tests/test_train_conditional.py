"""Training the conditional ε_θ(x_t, t, y) of chapter 7: labels, label dropout, init_from and resume."""
from __future__ import annotations

import copy
import importlib

import pytest
import torch

from dnnl.models.ddpm import NoiseSchedule, TrainConfig, UNet, drop_labels, init_weights, train, train_step
from dnnl.models.ddpm.losses import _noise_prediction_loss
from dnnl.models.ddpm.train import load_checkpoint, save_checkpoint

from _train_helpers import one_thread, resumes_bit_identically, tiny  # noqa: F401
from test_train import same_tensors

train_module = importlib.import_module("dnnl.models.ddpm.train")
pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(channels=(8, 16), groups=4, heads=2)


def _step_inputs(seed=0):
    torch.manual_seed(seed)
    model = UNet(**SMALL, num_classes=10)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    x0 = torch.rand(6, 1, 8, 8) * 2 - 1
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    return model, NoiseSchedule.linear(50), x0, y, torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)


def test_train_step_with_labels_drops_them_first_then_draws_t_and_noise():
    """The order of the draws from the step's generator: the dropout mask, then t, then ε (checked by hand)."""
    model, schedule, x0, y, opt = _step_inputs()
    ref_model = copy.deepcopy(model)
    ref_opt = torch.optim.AdamW(ref_model.parameters(), lr=1e-2, weight_decay=0.0)
    gen = torch.Generator().manual_seed(7)
    kept = drop_labels(y, 0.5, 10, gen)
    assert (kept == 10).any() and (kept != 10).any()  # this seed drops some labels and keeps others
    ref_loss = _noise_prediction_loss(lambda xt, t: ref_model(xt, t, kept), schedule, x0, generator=gen)
    ref_opt.zero_grad()
    ref_loss.backward()
    torch.nn.utils.clip_grad_norm_(ref_model.parameters(), 1.0)
    ref_opt.step()
    loss = train_step(model, schedule, x0, opt, y=y, p_uncond=0.5, generator=torch.Generator().manual_seed(7),
                      grad_clip=1.0)
    assert torch.equal(loss, ref_loss.detach())
    same_tensors(model.state_dict(), ref_model.state_dict())
    # without dropout the labels go in as they are, and the label embedding gets a gradient
    model, schedule, x0, y, opt = _step_inputs()
    before = model.label_emb.weight.detach().clone()
    train_step(model, schedule, x0, opt, y=y, p_uncond=0.0, generator=torch.Generator().manual_seed(7))
    assert not torch.equal(model.label_emb.weight[:6], before[:6]) and torch.equal(model.label_emb.weight[6:],
                                                                                     before[6:])


def test_train_step_refuses_labels_for_an_unconditional_model_and_a_bad_p_uncond():
    model, schedule, x0, y, opt = _step_inputs()
    plain = UNet(**SMALL)
    with pytest.raises(ValueError, match="y must be None for an unconditional model"):
        train_step(plain, schedule, x0, torch.optim.AdamW(plain.parameters()), y=y)
    with pytest.raises(ValueError, match=r"p_uncond must be a finite number in \[0, 1\)"):
        train_step(model, schedule, x0, opt, y=y, p_uncond=1.0)
    with pytest.raises(TypeError, match="y must be an int64 tensor"):
        train_step(model, schedule, x0, opt, y=y.float())


def test_conditional_resume_is_bit_identical(mnist_root, tmp_path):
    whole = resumes_bit_identically(mnist_root, tmp_path, num_classes=10, p_uncond=0.3)
    assert whole.model.label_emb.weight.abs().sum() > 0  # the labels were used


def test_train_feeds_the_batch_labels_and_p_uncond(mnist_root, tmp_path, monkeypatch):
    from dnnl.data import mnist_tensors

    seen = []
    real = train_module.train_step

    def spy(model, schedule, x0, optimizer, **kw):
        seen.append((x0.clone(), kw["y"].clone(), kw["p_uncond"]))
        return real(model, schedule, x0, optimizer, **kw)

    monkeypatch.setattr(train_module, "train_step", spy)
    train(tiny(mnist_root, tmp_path, steps=2, checkpoint_every=2, num_classes=10, p_uncond=0.25), progress=False)
    images, labels = mnist_tensors("train", mnist_root)
    for x0, y, p in seen:
        assert p == 0.25 and y.dtype == torch.long and y.shape == (16,)
        # each label is the label of its image in the training set
        for img, lab in zip(x0[:4], y[:4]):
            idx = torch.nonzero((images[:64] == img).flatten(1).all(1)).flatten()
            assert labels[idx[0]] == lab


def test_an_unconditional_run_passes_no_labels(mnist_root, tmp_path, monkeypatch):
    seen = []
    real = train_module.train_step
    monkeypatch.setattr(train_module, "train_step", lambda *a, **k: seen.append(k["y"]) or real(*a, **k))
    train(tiny(mnist_root, tmp_path, steps=2, checkpoint_every=2), progress=False)
    assert seen == [None, None]


def test_init_from_starts_at_the_given_weights_with_a_zero_label_embedding(mnist_root, tmp_path, monkeypatch):
    config = tiny(mnist_root, tmp_path / "base", steps=2, checkpoint_every=2)
    base = train(config, progress=False)
    start = []
    real = train_module.train_step
    monkeypatch.setattr(train_module, "train_step",
                        lambda m, *a, **k: start.append(copy.deepcopy(m.state_dict())) or real(m, *a, **k))
    train(tiny(mnist_root, tmp_path / "cond", steps=1, checkpoint_every=1, num_classes=10,
               init_from=str(base.checkpoint)), progress=False)
    first = start[0]
    assert torch.equal(first["label_emb.weight"], torch.zeros_like(first["label_emb.weight"]))
    for k, v in base.ema_model.state_dict().items():  # a training checkpoint gives its EMA weights
        assert torch.equal(first[k], v), k


def test_init_weights_refuses_weights_that_do_not_fit(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(UNet(**SMALL).state_dict(), path)
    model = UNet(**SMALL, num_classes=10)
    init_weights(model, path)
    with pytest.raises(ValueError, match="init_from=.*do not fit"):
        init_weights(UNet(channels=(8, 32), groups=4, heads=2), path)
    with pytest.raises(ValueError, match="init_from=.*do not fit"):
        init_weights(UNet(**SMALL, attention=False), path)


def test_an_older_checkpoint_without_the_label_fields_still_resumes(mnist_root, tmp_path):
    whole = train(tiny(mnist_root, tmp_path / "whole"), progress=False)
    split = train(tiny(mnist_root, tmp_path / "split", steps=10), progress=False)
    state = load_checkpoint(split.checkpoint)
    for key in ("num_classes", "p_uncond", "init_from"):
        del state["config"][key]
    save_checkpoint({k: v for k, v in state.items() if k != "checksum"}, split.checkpoint)
    resumed = train(tiny(mnist_root, tmp_path / "split"), resume=True, progress=False)
    assert resumed.losses == whole.losses
    # but a change of one of them is refused
    with pytest.raises(ValueError, match="num_classes: checkpoint None vs now 10"):
        train(tiny(mnist_root, tmp_path / "split", steps=30, num_classes=10), resume=True, progress=False)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(p_uncond=1.0), ValueError, r"p_uncond must be a finite number in \[0, 1\)"),
    (dict(p_uncond=-0.01), ValueError, r"p_uncond must be a finite number in \[0, 1\)"),
    (dict(num_classes=0), ValueError, r"num_classes \(None or an int\) must be an int >= 1"),
    (dict(num_classes=2.0), TypeError, r"num_classes \(None or an int\) must be an int"),
    (dict(init_from=3), TypeError, "init_from must be a weights file path"),
])
def test_bad_label_fields_are_refused_with_their_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**kwargs)


def test_too_few_classes_for_the_data_are_refused(mnist_root, tmp_path):
    with pytest.raises(ValueError, match=r"the data's labels \(num_classes too small\?\) must be in \[0, 4\]"):
        train(tiny(mnist_root, tmp_path, num_classes=5), progress=False)


def test_the_config_builds_a_conditional_model():
    config = TrainConfig(num_classes=10)
    assert config.model_kwargs()["num_classes"] == 10 and config.build_model().num_classes == 10
    assert "num_classes" not in TrainConfig().model_kwargs()  # unconditional records stay as they were


def test_the_label_embedding_can_learn_faster_than_the_loaded_weights():
    model = UNet(**SMALL, num_classes=10)
    groups = train_module._param_groups(model, TrainConfig(lr=1e-3, label_lr_scale=10.0, num_classes=10))
    assert len(groups) == 2 and groups[1]["params"] == [model.label_emb.weight] and groups[1]["lr"] == 1e-2
    assert len(groups[0]["params"]) + 1 == len(list(model.parameters()))
    # one group, in the model's own order, when the scale is 1 or there is no label embedding
    for m, scale in ((model, 1.0), (UNet(**SMALL), 10.0)):
        (only,) = train_module._param_groups(m, TrainConfig(label_lr_scale=scale))
        assert only["params"] == list(m.parameters())
    with pytest.raises(ValueError, match="label_lr_scale must be a finite number > 0"):
        TrainConfig(label_lr_scale=0.0)
