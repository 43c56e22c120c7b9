"""Sampler throughput and the cost of a DQL-style gradient step, with a breakdown of where time goes.

    .venv/bin/python benchmarks/bench_sampler.py [--threads 2] [--repeats 20] [--device cpu]

Prints (median over repeats, after warm-up):
* acting: actions/s for 256 observations x 50 candidates with T = 5 DDPM (DQLMlp, eps) and with
  T = 50, 15-step DPM-Solver++(2M) (DQLMlp, x0; the EDP setting);
* a DQL-style step at batch 256 (obs 15, act 3, DQLMlp 3 x 256 Mish, CD DQLCritic): its parts
  (one denoiser forward, the raw 5-call chain, the sampler's 5-step chain forward and
  forward+backward, BC loss, critic update, EMA target sampling) and the implied steps/s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from rl_core.diffusion import NoiseSchedule, diffusion_loss, make_schedule, sample
from rl_core.nets import DQLMlp, Mish, TwinQ


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 3) -> tuple[float, float, float]:
    """(median wall, min wall, median CPU time of this process) of fn() in seconds.

    On a shared machine the CPU time is the contention-robust figure (with 1 thread it is close to
    the uncontended wall time; with more threads it adds up all threads, spin-waits included).
    """
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0), cpu.append(time.process_time() - c0)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def aten_mish(module: torch.nn.Module) -> torch.nn.Module:
    """Swap every rl_core Mish for torch.nn.Mish (ATen kernel), to show what the one-exp Mish saves."""
    for name, child in module.named_children():
        setattr(module, name, torch.nn.Mish()) if isinstance(child, Mish) else aten_mish(child)
    return module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--only", choices=("act", "dql"), default=None, help="run one of the two parts")
    p.add_argument("--device", default="cpu")
    p.add_argument("--obs-dim", type=int, default=15)
    p.add_argument("--act-dim", type=int, default=3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--candidates", type=int, default=50)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dev, B, O, A, R = torch.device(args.device), args.batch, args.obs_dim, args.act_dim, args.repeats
    gen = torch.Generator(dev).manual_seed(0)
    print(f"torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}, repeats {R}; times: wall median / wall min / CPU median")
    fmt = lambda t: f"{t[0] * 1e3:8.2f} / {t[1] * 1e3:8.2f} / {t[2] * 1e3:8.2f} ms"

    net = DQLMlp(O, A).to(dev)
    obs = torch.randn(B, O, device=dev)
    cond = obs.repeat_interleave(args.candidates, 0)
    n_act = cond.shape[0]
    s5, s50 = make_schedule("cosine", 5), make_schedule("cosine", 50)
    if args.only != "dql":
        with torch.no_grad():
            t = timeit(lambda: sample(net, cond, (n_act, A), s5, solver="ddpm", generator=gen, temperature=0.5), R)
            print(f"act  T=5 DDPM          {B}x{args.candidates}: {fmt(t)}  {n_act / t[0]:8.0f} actions/s (median)")
            t = timeit(lambda: sample(net, cond, (n_act, A), s50, solver="dpm_solver_2m", steps=15, predict="x0", generator=gen, temperature=0.5), R)
            print(f"act  T=50 DPM++(2M) 15 {B}x{args.candidates}: {fmt(t)}  {n_act / t[0]:8.0f} actions/s (median)")

    if args.only != "act":
        dql_step(args, net, obs, s5, gen, fmt)


def dql_step(args: argparse.Namespace, net: DQLMlp, obs: torch.Tensor, s5: NoiseSchedule, gen: torch.Generator, fmt: Callable) -> None:
    """Time the parts of a DQL-style gradient step at batch B and the whole step (CD ``main`` DQL, algorithms.md section 3.1)."""
    dev, B, O, A, R = obs.device, args.batch, args.obs_dim, args.act_dim, args.repeats
    critic, critic_t = TwinQ.cd_dql(O, A).to(dev), TwinQ.cd_dql(O, A).to(dev)
    opt_a, opt_c = torch.optim.Adam(net.parameters(), 3e-4), torch.optim.Adam(critic.parameters(), 3e-4)
    act, k = torch.rand(B, A, device=dev) * 2 - 1, torch.full((B,), 2.0, device=dev)
    x = torch.randn(B, A, device=dev)

    def raw_chain() -> torch.Tensor:
        y = x
        for kk in (4.0, 3.0, 2.0, 1.0, 0.0):
            y = net(y, torch.full((B,), kk, device=dev), obs)
        return y

    def chain_fwd_bwd() -> None:
        a_new = sample(net, obs, (B, A), s5, solver="ddpm", generator=gen)
        q1, q2 = critic(obs, a_new)
        (-q1.mean() / q2.abs().mean().detach()).backward()
        net.zero_grad(set_to_none=True), critic.zero_grad(set_to_none=True)

    def bc_fwd_bwd() -> None:
        diffusion_loss(net, act, obs, s5, predict="eps", generator=gen).backward()
        net.zero_grad(set_to_none=True)

    def critic_step() -> None:
        q1, q2 = critic(obs, act)
        y = torch.randn(B, device=dev)
        loss = ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()
        opt_c.zero_grad(set_to_none=True), loss.backward(), opt_c.step()

    def target_actions() -> None:
        with torch.no_grad():
            a2 = sample(net, obs, (B, A), s5, solver="ddpm", generator=gen)
            critic_t.q_min(obs, a2)

    def full_step() -> None:
        target_actions()
        critic_step()
        a_new = sample(net, obs, (B, A), s5, solver="ddpm", generator=gen)
        q1, q2 = critic(obs, a_new)
        loss = diffusion_loss(net, act, obs, s5, predict="eps", generator=gen) - q1.mean() / q2.abs().mean().detach()
        opt_a.zero_grad(set_to_none=True), loss.backward(), opt_a.step()
        critic.zero_grad(set_to_none=True)

    with torch.no_grad():
        parts = {"denoiser forward x1": lambda: net(x, k, obs), "raw 5-call chain (no sampler)": raw_chain,
                 "sampler 5-step chain, no_grad": lambda: sample(net, obs, (B, A), s5, generator=gen)}
        times = {name: timeit(fn, R) for name, fn in parts.items()}
    times |= {"sampler 5-step chain fwd+bwd (Q-loss)": timeit(chain_fwd_bwd, R), "BC loss fwd+bwd": timeit(bc_fwd_bwd, R),
              "critic fwd+bwd+Adam": timeit(critic_step, R), "target a' (5 no-grad NFE) + Q'": timeit(target_actions, R)}
    for name, t in times.items():
        print(f"dql  {name:40s} {fmt(t)}")
    t = timeit(full_step, R)
    print(f"dql  full step (target, critic, BC + chain Q-loss, Adam): {fmt(t)}  -> {1 / t[0]:.1f} steps/s (wall median), {1 / t[2]:.1f} (per CPU second)")
    aten_mish(net), aten_mish(critic), aten_mish(critic_t)
    t = timeit(full_step, R)
    print(f"dql  same with ATen torch.nn.Mish:                        {fmt(t)}  -> {1 / t[0]:.1f} steps/s (wall median), {1 / t[2]:.1f} (per CPU second)")


if __name__ == "__main__":
    main()
