"""Robust fusion probe (issue 12, not shipped): IBP whose LR pixels are weighted by how well each frame
agrees with the reference date there. The frame against the moved reference with a local gain and bias
(Gaussian window of SL LR px, Tukey-reweighted ITER times), the residual smoothed (SM LR px), Tukey
weights at C robust spreads of each frame, the reference at full weight; the iteration count chosen as
the job does. It patches the weights into IBP's data mask (``baselines._ibp_iterates``'s ``m``), so it
runs on a checkout with the one-line hook below applied by hand:

    m = F.pad(valid.to(frames.dtype) * (_W if _W is not None else 1.0), (margin,) * 4)   # and _W = None

    cd benchmarks && C=12 ../.venv/bin/python probe_agreement.py            # real dates
    C=12 NOREAL=1 STATIC=1 ../.venv/bin/python probe_agreement.py            # static stacks
"""
import os
import statistics
import torch
import torch.nn.functional as F
from common import s2_stacks, S2_DATA_RANGE, l8_stacks, DATA_RANGE
import stacksr.core.baselines as B
import stacksr.core.registration as R
from stacksr.core.degradation import shift_images
from stacksr.core.metrics import cpsnr
C = float(os.environ.get("C", "8"))
SL = float(os.environ.get("SL", "4"))
SM = float(os.environ.get("SM", "1.5"))

def gauss(z, s):
    r = int(3 * s + 1)
    t = torch.arange(-r, r + 1, dtype=z.dtype)
    g = torch.exp(-t ** 2 / (2 * s * s)); g = g / g.sum()
    z = z[:, None]
    z = F.conv2d(F.pad(z, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    z = F.conv2d(F.pad(z, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))
    return z[:, 0]

def agreement(f, v, shifts):
    T, H, W = f.shape
    f = f.double()
    ref = R._fill_invalid(f[0][None], v[0][None])[0]
    a = shift_images(ref.expand(T, H, W), shifts.double())
    wvalid = shift_images(v[0].double().expand(T, H, W), shifts.double(), mode="bilinear") > 0.999
    mask = (v & wvalid).double()
    w = mask.clone()
    for it in range(int(os.environ.get("ITER", "5"))):
        s0 = gauss(w, SL).clamp(min=1e-9)
        ma = gauss(w * a, SL) / s0; my = gauss(w * f, SL) / s0
        va = gauss(w * a * a, SL) / s0 - ma ** 2
        cay = gauss(w * a * f, SL) / s0 - ma * my
        gain = cay / (va + 1e-3 * va.mean(dim=(1, 2), keepdim=True) + 1e-12)
        res = f - (my + gain * (a - ma))
        rs = gauss(res * mask, SM) / gauss(mask, SM).clamp(min=1e-6) if SM > 0 else res
        sc = R._robust_scale(rs, mask > 0)
        u = rs / (C * sc[:, None, None])
        w = mask * (1 - u ** 2).clamp(min=0) ** 2
    wts = torch.where(mask > 0, (1 - u ** 2).clamp(min=0) ** 2, torch.ones_like(u))
    wts[0] = 1.0
    return wts

benches = []
if not os.environ.get("NOREAL"):
    benches.append(("realdates", [(n, st.hr, st.lr, st.valid) for n, st in s2_stacks()], S2_DATA_RANGE))
if os.environ.get("STATIC"):
    benches.append(("static", [(n, st.hr, st.lr, torch.ones_like(st.lr, dtype=torch.bool)) for n, st in l8_stacks(399)], DATA_RANGE))
for bench, stacks, dr in benches:
    res = []
    for name, hr, lr, valid in stacks:
        reg = R.register_stack(lr, valid, 0); used = reg.kept(0.9); used[0] = True
        f, v, s = lr[used], valid[used], reg.shifts[used]
        B._W = agreement(f, v, s).float()
        n, _ = B.choose_ibp_iterations(f, v, 3, s)
        out = B.ibp(f, v, 3, s, iterations=n)
        B._W = None
        res.append(cpsnr(out.numpy(), hr.numpy(), data_range=dr).cpsnr)
    print(bench, f"C {C} SL {SL} SM {SM} mean {statistics.mean(res):.3f}", [round(x, 2) for x in res], flush=True)
