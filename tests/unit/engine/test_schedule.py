"""Learning-rate schedules (warm-up, cosine, constant, one-cycle, resume) and the EMA of weights."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hbac.engine.schedule import EMA, make_scheduler

LR = 1e-2


def lrs(schedule: str, total: int, warmup_frac: float, steps: int | None = None) -> np.ndarray:
    """The learning rate used at each optimiser step 0 … steps-1."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = make_scheduler(opt, schedule, total, warmup_frac, LR)
    out = []
    for _ in range(total if steps is None else steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


def test_cosine_warms_up_linearly_then_decays_to_zero() -> None:
    lr = lrs("cosine", total=100, warmup_frac=0.1)
    warm = 10
    np.testing.assert_allclose(lr[:warm], LR * (np.arange(warm) + 1) / (warm + 1))
    assert lr[warm] == pytest.approx(LR)  # peak right after warm-up
    assert np.all(np.diff(lr[warm:]) <= 1e-15)  # then never increases
    p = (50 - warm) / (100 - warm)
    assert lr[50] == pytest.approx(LR * 0.5 * (1 + math.cos(math.pi * p)))
    assert lr[-1] < 0.001 * LR


def test_constant_after_warmup_and_no_warmup() -> None:
    lr = lrs("constant", total=40, warmup_frac=0.25)
    assert np.all(np.diff(lr[:10]) > 0) and np.allclose(lr[10:], LR)
    assert np.allclose(lrs("constant", total=5, warmup_frac=0.0), LR)


def test_onecycle_peaks_at_pct_start_and_anneals() -> None:
    lr = lrs("onecycle", total=100, warmup_frac=0.3)
    peak = int(np.argmax(lr))
    assert abs(peak - 30) <= 1 and lr[peak] == pytest.approx(LR, rel=1e-3)
    assert lr[0] < 0.1 * LR and lr[-1] < 0.01 * LR


def test_zero_steps_is_one_step() -> None:
    assert len(lrs("cosine", total=0, warmup_frac=0.1, steps=1)) == 1


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_scheduler_resumes_from_state_dict(schedule: str) -> None:
    """A scheduler restored from state_dict continues exactly where the saved one was (as --resume needs)."""
    def make():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
        return opt, make_scheduler(opt, schedule, 50, 0.2, LR)

    opt, sched = make()
    full = []
    for i in range(50):
        full.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if i == 19:
            state_opt, state_sched = opt.state_dict(), sched.state_dict()
    opt2, sched2 = make()
    opt2.load_state_dict(state_opt)
    sched2.load_state_dict(state_sched)
    rest = []
    for _ in range(30):
        rest.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    np.testing.assert_allclose(rest, full[20:])


# --------------------------------------------------------------------------- EMA


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def test_ema_starts_as_a_copy_and_is_independent() -> None:
    m = small_model()
    ema = EMA(m, 0.9)
    for k, v in m.state_dict().items():
        assert torch.equal(ema.shadow[k], v) and ema.shadow[k].data_ptr() != v.data_ptr()


def test_ema_update_is_the_exponential_average() -> None:
    m = small_model()
    ema = EMA(m, 0.75)
    w0 = m[0].weight.detach().clone()
    history = [w0]
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        opt.zero_grad()
        m(x).pow(2).mean().backward()
        opt.step()
        ema.update(m)
        history.append(m[0].weight.detach().clone())
    expected = history[0]
    for w in history[1:]:
        expected = 0.75 * expected + 0.25 * w
    torch.testing.assert_close(ema.shadow["0.weight"], expected)
    assert not torch.equal(ema.shadow["0.weight"], m[0].weight)  # it lags behind the trained weights
    # integer buffers are copied, not averaged
    assert ema.shadow["1.num_batches_tracked"].item() == m[1].num_batches_tracked.item() == 3


def test_ema_decay_zero_follows_the_model_and_one_stays() -> None:
    m = small_model()
    follow, frozen = EMA(m, 0.0), EMA(m, 1.0)
    start = m[0].weight.detach().clone()
    with torch.no_grad():
        m[0].weight.add_(1.0)
    follow.update(m)
    frozen.update(m)
    torch.testing.assert_close(follow.shadow["0.weight"], m[0].weight.detach())
    torch.testing.assert_close(frozen.shadow["0.weight"], start)
