"""Self-supervised PIUNet training: losses, sampler, checkpoints, resume, safe loading."""
import os
import pickle
from dataclasses import replace

import pytest
import torch

from stacksr.core.degradation.operators import gaussian_kernels
from stacksr.core.jobs.job_reports import kept_step
from stacksr.core.learned.piunet import PIUNetConfig
from stacksr.core.progress import Cancelled, Monitor
from stacksr.core.learned.losses import shift_search_l1
from stacksr.core.learned.model_files import ModelFileError, load_model
from stacksr.core.learned.sampling import SelfSupervisedSampler, StackData
from stacksr.core.learned.training import TrainConfig, train_self_supervised

TINY = PIUNetConfig(scale=3, features=8, blocks=1)


def _bank():
    return gaussian_kernels(torch.tensor([1.2, 1.8, 1.5]), torch.tensor([1.0, 1.2, 1.5]), torch.tensor([0.0, 1.0, 2.0]), 15, 3)


@pytest.fixture(scope="module")
def lr_stack(l8_stack):
    return StackData(l8_stack.lr, torch.ones_like(l8_stack.lr, dtype=torch.bool), "l8")


def test_shift_search_l1_ignores_bias_and_small_shifts():
    g = torch.Generator().manual_seed(0)
    big = torch.rand(1, 20, 20, generator=g)
    target = big[:, 2:18, 2:18]
    pred = big[:, 3:19, 1:17] + 0.3  # shifted by (1, -1) and brighter
    m = torch.ones_like(target, dtype=torch.bool)
    assert float(shift_search_l1(pred, target, m, 1)) < 1e-6
    assert float(shift_search_l1(pred, target, m, 0)) > 0.1


def test_sampler_makes_cr_inputs_and_lr_targets_from_train_area_only(lr_stack):
    cfg = TrainConfig(scale=3, frames=5, patch=8, batch=4, val_fraction=0.5)
    sampler = SelfSupervisedSampler([lr_stack], _bank(), cfg)
    x, y, m, base = sampler.sample(4, torch.Generator().manual_seed(0))
    assert base is None  # no network set: the published bilinear residual needs no base
    assert x.shape == (4, 5, 8, 8) and y.shape == (4, 24, 24) and m.shape == (4, 24, 24)
    assert torch.isfinite(x).all() and m.all()
    assert sampler.split_rows[0] == 30


def test_sampler_repeats_frames_when_the_stack_is_short(lr_stack):
    short = StackData(lr_stack.frames[:3], lr_stack.valid[:3])
    sampler = SelfSupervisedSampler([short], _bank(), TrainConfig(frames=9, patch=8))
    x, _, _, _ = sampler.sample(2, torch.Generator().manual_seed(1))
    assert x.shape[1] == 9


def test_training_writes_best_and_last_and_refuses_other_files(lr_stack, tmp_path):
    cfg = TrainConfig(scale=3, frames=4, patch=8, batch=2, steps=6, val_every=3)
    out = str(tmp_path / "model.pt")
    res = train_self_supervised([lr_stack], _bank(), cfg, out, bank_digest="abc", net_config=TINY)
    assert res["steps"] == 6 and os.path.exists(out) and os.path.exists(out + ".last")
    net, payload = load_model(out, scale=3)
    assert payload["kernel_bank"] == "abc" and payload["train"]["patch"] == 8
    with pytest.raises(ModelFileError, match="scale x3, not x2"):
        load_model(out, scale=2)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "stacksr-piunet"}))
    with pytest.raises(ModelFileError):
        load_model(str(evil))


class _CancelAt(Monitor):
    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, 0

    def _emit(self, fraction, message):
        self.seen += 1

    def is_cancelled(self):
        return self.seen >= self.step


def test_cancel_saves_a_checkpoint_that_resumes_to_the_uninterrupted_result(lr_stack, tmp_path):
    cfg = TrainConfig(scale=3, frames=4, patch=8, batch=2, steps=8, val_every=4)
    full = str(tmp_path / "full.pt")
    train_self_supervised([lr_stack], _bank(), cfg, full, "d", TINY)
    part = str(tmp_path / "part.pt")
    with pytest.raises(Cancelled):
        train_self_supervised([lr_stack], _bank(), cfg, part, "d", TINY, monitor=_CancelAt(5))
    # no network configuration given: the checkpoint's own architecture is resumed
    train_self_supervised([lr_stack], _bank(), cfg, part, "d", None, resume=part + ".last")
    a, _ = load_model(full + ".last")
    b, _ = load_model(part + ".last")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), ka
    with pytest.raises(ModelFileError, match="another kernel bank"):
        train_self_supervised([lr_stack], _bank(), cfg, part, "other", TINY, resume=part + ".last")


def test_a_resumed_run_reports_the_whole_training_curve_and_every_validation(lr_stack, tmp_path):
    """After a resume the report's plot showed the last few steps and no validation series: the curve is kept in
    the checkpoint, and a series of one point is drawn as a point."""
    from stacksr.core.jobs.job_reports import training_report

    cfg = TrainConfig(scale=3, frames=4, patch=8, batch=2, steps=8, val_every=4)
    part = str(tmp_path / "part.pt")
    with pytest.raises(Cancelled):
        train_self_supervised([lr_stack], _bank(), cfg, part, "d", TINY, monitor=_CancelAt(6))
    res = train_self_supervised([lr_stack], _bank(), cfg, part, "d", None, resume=part + ".last")
    assert [s for s, _ in res["curve"]] == list(range(1, 9)) and [h[0] for h in res["history"]] == [4, 8]
    page = tmp_path / "report.html"
    training_report(str(page), res, cfg, "cpu", ["a.tif"])
    text = page.read_text()
    assert text.count("<polyline") == 2  # training and validation, both over the whole run
    one = {**res, "history": res["history"][-1:]}
    training_report(str(page), one, cfg, "cpu", ["a.tif"])
    assert "<circle" in page.read_text()


@pytest.mark.slow
def test_torchrun_gloo_with_two_processes_trains_one_model(sample_images, tmp_path):
    import json
    import subprocess
    import sys

    from conftest import ROOT
    from stacksr.core.io.kernel_bank import KernelBank

    bank = KernelBank(_bank().numpy(), ["a", "b", "c"], 3).save(str(tmp_path / "bank.npz"))
    out = str(tmp_path / "ddp.pt")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build", "pkg"), OMP_NUM_THREADS="1")
    res = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "stacksr", "--quiet", "train",
         "--inputs", *sample_images, "--kernel-bank", bank, "--steps", "3", "--batch", "2", "--device", "cpu",
         "--output", out], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    summaries = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 2 and all(s["world_size"] == 2 and s["steps"] == 3 for s in summaries)
    net, payload = load_model(out, scale=3)
    assert payload["state"]["step"] == 3


def test_supervised_training_learns_lr_to_hr(l8_stack, tmp_path):
    from stacksr.core.learned.training import train_supervised

    stack = StackData(l8_stack.lr, torch.ones_like(l8_stack.lr, dtype=torch.bool), "l8")
    cfg = TrainConfig(scale=3, frames=4, patch=12, batch=2, steps=4, val_every=2, val_fraction=0.4)
    res = train_supervised([stack], [l8_stack.hr], cfg, str(tmp_path / "sup.pt"), TINY)
    _, payload = load_model(str(tmp_path / "sup.pt"), scale=3)
    assert res["steps"] == 4 and payload["kernel_bank"] == "supervised"
    with pytest.raises(ValueError, match="expected"):
        train_supervised([stack], [l8_stack.hr[:-3]], cfg, str(tmp_path / "bad.pt"), TINY)


def test_diverging_training_stops_with_a_clear_message(lr_stack, tmp_path):
    cfg = TrainConfig(scale=3, frames=4, patch=8, batch=2, steps=20, val_every=10, lr=1e12)
    with pytest.raises(FloatingPointError, match="training diverged at step"):
        train_self_supervised([lr_stack], _bank(), cfg, str(tmp_path / "m.pt"), "d", TINY)


def test_the_training_progress_line_gives_validation_and_eta():
    from stacksr.core.learned.training import TrainState, progress_line

    state = TrainState(step=120, history=[(100, 0.5, 0.38)])
    assert progress_line(state, 500, 0.41, 30.0, 120) == "step 120/500, loss 0.4100, validation 0.3800, ETA 1 min 35 s"
    assert progress_line(TrainState(step=1), 10, 0.5, 0.2, 1) == "step 1/10, loss 0.5000, ETA 2 s"


def test_qgis_log_gets_about_twenty_training_lines_not_one_per_step(qgis_app):
    from qgis.core import QgsProcessingFeedback

    from stacksr.processing_provider.feedback import FeedbackMonitor

    texts = []

    class Log(QgsProcessingFeedback):
        def setProgressText(self, text):  # noqa: N802
            texts.append(text)

    mon = FeedbackMonitor(Log())
    mon.info("device: cpu")
    for step in range(1, 501):
        mon.progress(step / 500, f"step {step}/500, loss 0.1")
    mon.progress(1.0, "wrote model.pt")
    assert 15 <= len(texts) <= 25 and texts[-1] == "wrote model.pt"


def test_training_returns_a_loss_curve_dense_enough_to_plot(lr_stack, tmp_path):
    cfg = TrainConfig(scale=3, frames=4, patch=6, batch=2, steps=12, val_every=6)
    res = train_self_supervised([lr_stack], _bank(), cfg, str(tmp_path / "m.pt"), "d", TINY)
    assert [s for s, _ in res["curve"]] == list(range(1, 13)) and len(res["history"]) == 2


def _start_model(lr_stack, folder) -> str:
    """A tiny trained model to fine-tune."""
    start = str(folder / "start.pt")
    train_self_supervised([lr_stack], _bank(), TrainConfig(scale=3, frames=4, patch=8, batch=2, steps=2, val_every=2),
                          start, "d", TINY)
    return start


# a rate far too high for a trained network: every step validates worse than the model it started from
_TOO_FAST = TrainConfig(scale=3, frames=4, patch=8, batch=2, steps=4, val_every=2, lr=0.05)


def test_fine_tuning_keeps_the_starting_model_where_no_step_validates_better(lr_stack, tmp_path):
    start, out, cfg = _start_model(lr_stack, tmp_path), str(tmp_path / "tuned.pt"), _TOO_FAST
    res = train_self_supervised([lr_stack], _bank(), cfg, out, "d", None, init=start)
    steps, vals = [h[0] for h in res["history"]], [h[2] for h in res["history"]]
    assert steps == [0, 2, 4] and res["best_step"] == 0 and res["best_val"] == vals[0] < min(vals[1:])
    assert kept_step(res) == "the starting model (no step validated better)"  # what the report and the logs say
    a, b = load_model(start)[0].state_dict(), load_model(out)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    last = load_model(out + ".last")[0].state_dict()  # the steps did run: the checkpoint holds where they got
    assert any(not torch.equal(a[k], last[k]) for k in a)


def test_fine_tuning_cancelled_before_a_step_beats_the_start_writes_no_model(lr_stack, tmp_path):
    start, out, cfg = _start_model(lr_stack, tmp_path), str(tmp_path / "tuned.pt"), replace(_TOO_FAST, steps=8)
    with pytest.raises(Cancelled):
        train_self_supervised([lr_stack], _bank(), cfg, out, "d", None, init=start, monitor=_CancelAt(3))
    assert not os.path.exists(out) and os.path.exists(out + ".last")
    # resumed, the checkpoint holds no copy of the starting model: the best step after resuming is written
    res = train_self_supervised([lr_stack], _bank(), cfg, out, "d", None, resume=out + ".last")
    assert os.path.exists(out) and res["best_step"] in (4, 6, 8)
