"""Plain nn.Modules: time embedding, denoisers (DQLMlp, LNResNet), MLP, twin Q and value critics.

Denoisers follow one contract: ``forward(x_t (B, x_dim), k (B,) float, obs_n (B, obs_dim)) -> (B, x_dim)``
(the prediction, eps or x0, is the algorithm's business). Architectures follow CleanDiffuser
``main`` (algorithms.md section 1.4) with the reference quirks as explicit switches:

* time steps are fed as floats to a proper sinusoidal embedding; ``integer_freqs=True`` replicates
  CleanDiffuser's truncation of the frequencies to integers (only frequency 1 survives);
* ``LNResNet(final_act=False)`` is CleanDiffuser's ``IDQLMlp`` (no activation before the output
  layer, issue #26); ``final_act=True`` is the official IDQL / ``NewIDQLMlp`` form.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from rl_core.errors import ConfigError


class _MishFn(torch.autograd.Function):
    """Mish with one exp: n = e^x, tanh(softplus(x)) = n(n + 2) / (n(n + 2) + 2);
    d mish / dx = t + x (1 - t^2) sigmoid(x), sigmoid(x) = n / (1 + n)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        n = x.clamp(max=20.0).exp_()  # t == 1 in float32 beyond x = 20
        p = n.add(2).mul_(n)
        t = p.div(p.add(2))
        ctx.save_for_backward(x, n, t)
        return x * t

    @staticmethod
    @once_differentiable  # second derivatives through Mish raise instead of silently ignoring n, t
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        x, n, t = ctx.saved_tensors
        return g * (1 - t * t).mul_(x).mul_(n.div(n.add(1))).add_(t)


class Mish(nn.Module):
    """Mish(x) = x tanh(softplus(x)) (Misra 2019). On CPU in float32/64 a one-exp form replaces ATen's
    kernel, which evaluates exp, log1p and tanh: measured 2.1x faster forward, 2.4x forward+backward on a
    (256, 256) tensor (1 thread, AVX-512 EPYC); equal to F.mish within 1e-6. Elsewhere (GPU, half) F.mish."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            return _MishFn.apply(x)
        return nn.functional.mish(x)


ACTIVATIONS: dict[str, type[nn.Module]] = {"mish": Mish, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (one of ACTIVATIONS)."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation={name!r}; allowed: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of float steps, then Linear(dim, hidden) - Mish - Linear(hidden, dim).

    Frequencies f_j = max_positions^(-j / (dim/2)), j = 0..dim/2-1 (CleanDiffuser ``PositionalEmbedding``);
    e(k) = [cos(k f), sin(k f)]. k: (B,) float -> (B, dim).
    """

    def __init__(self, dim: int = 64, hidden: int = 128, max_positions: float = 10_000.0, integer_freqs: bool = False) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ConfigError(f"time embedding dim must be an even integer >= 2, got dim={dim}")
        freqs = max_positions ** (-torch.arange(dim // 2, dtype=torch.float32) / (dim // 2))
        self.register_buffer("freqs", freqs.floor() if integer_freqs else freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), Mish(), nn.Linear(hidden, dim))

    def forward(self, k: Tensor) -> Tensor:
        if k.dim() == 1 and len(k) > 1 and k.stride(0) == 0:  # one step for the whole batch (the samplers pass k.expand(B))
            return self(k[:1]).expand(len(k), -1)
        arg = k.to(self.freqs.dtype)[:, None] * self.freqs
        return self.mlp(torch.cat([arg.cos(), arg.sin()], dim=-1))


class MLP(nn.Sequential):
    """in_dim -> n_layers x [Linear(hidden) (-> LayerNorm) -> act] -> Linear(out_dim).

    ``first_activation`` overrides the activation of the first hidden layer (CleanDiffuser's
    ``DQLCritic`` uses Tanh there). ``input_layer_norm`` puts a LayerNorm on the input (IDQL HEAD value net).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: int = 256,
        n_layers: int = 2,
        activation: str = "mish",
        layer_norm: bool = False,
        first_activation: str | None = None,
        input_layer_norm: bool = False,
    ) -> None:
        layers: list[nn.Module] = [nn.LayerNorm(in_dim)] if input_layer_norm else []
        for i in range(n_layers):
            layers.append(nn.Linear(in_dim if i == 0 else hidden, hidden))
            if layer_norm:
                layers.append(nn.LayerNorm(hidden))
            layers.append(make_activation(first_activation if i == 0 and first_activation else activation))
        layers.append(nn.Linear(hidden if n_layers else in_dim, out_dim))
        super().__init__(*layers)


class DQLMlp(nn.Module):
    """CleanDiffuser ``DQLMlp`` (DQL, EDP): concat[x_t, t_emb, obs] -> n_layers x (Linear(hidden), Mish) -> Linear(x_dim).

    forward(x_t (B, x_dim), k (B,) float, obs (B, obs_dim)) -> (B, x_dim).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, emb_dim: int = 64, n_layers: int = 3, integer_freqs: bool = False) -> None:
        super().__init__()
        self.time_emb = TimeEmbedding(emb_dim, 2 * emb_dim, integer_freqs=integer_freqs)
        self.mlp = MLP(act_dim + emb_dim + obs_dim, act_dim, hidden, n_layers, "mish")

    def forward(self, x_t: Tensor, k: Tensor, obs: Tensor) -> Tensor:
        return self.mlp(torch.cat([x_t, self.time_emb(k), obs], dim=-1))


class ResidualBlock(nn.Module):
    """x + Linear(expand*hidden -> hidden)(Mish(Linear(hidden -> expand*hidden)(LayerNorm(Dropout(x))))). (B, hidden) -> (B, hidden)."""

    def __init__(self, hidden: int, dropout: float, expand: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout), nn.LayerNorm(hidden), nn.Linear(hidden, expand * hidden), Mish(), nn.Linear(expand * hidden, hidden)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class LNResNet(nn.Module):
    """IDQL denoiser (CleanDiffuser ``IDQLMlp``): concat[x_t, t_emb, obs] -> Linear(hidden) -> n_blocks x ResidualBlock
    (-> Mish if ``final_act``) -> Linear(act_dim).

    ``out_extra_head=True`` (SWG-J ``MLPResNet_mod``) diffuses z = (a, w) of act_dim + 1 coordinates:
    the action part comes from the main head, the extra coordinate from MLP(hidden -> hidden -> 1, Mish)
    on the output of the second-to-last block. forward(x_t (B, x_dim), k (B,) float, obs (B, obs_dim))
    -> (B, x_dim), x_dim = act_dim (+ 1 with the extra head).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: int = 256,
        n_blocks: int = 3,
        dropout: float = 0.1,
        out_extra_head: bool = False,
        final_act: bool = False,
        emb_dim: int = 64,
        expand: int = 4,
        integer_freqs: bool = False,
    ) -> None:
        super().__init__()
        if out_extra_head and n_blocks < 2:
            raise ConfigError(f"LNResNet with out_extra_head needs n_blocks >= 2, got n_blocks={n_blocks}")
        x_dim = act_dim + int(out_extra_head)
        self.time_emb = TimeEmbedding(emb_dim, 2 * emb_dim, integer_freqs=integer_freqs)
        self.inp = nn.Linear(x_dim + emb_dim + obs_dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden, dropout, expand) for _ in range(n_blocks))
        self.out = nn.Sequential(*([Mish()] if final_act else []), nn.Linear(hidden, act_dim))
        self.extra = MLP(hidden, 1, hidden, 1, "mish") if out_extra_head else None

    def forward(self, x_t: Tensor, k: Tensor, obs: Tensor) -> Tensor:
        h = self.inp(torch.cat([x_t, self.time_emb(k), obs], dim=-1))
        extra = None
        for i, block in enumerate(self.blocks):
            h = block(h)
            if self.extra is not None and i == len(self.blocks) - 2:
                extra = self.extra(h)
        out = self.out(h)
        return out if extra is None else torch.cat([out, extra], dim=-1)


class TwinQ(nn.Module):
    """Two independent Q heads MLP(concat[obs, act]) -> 1.

    Defaults = CleanDiffuser IQL ``TwinQ`` (2 x 256, LayerNorm, Mish). CleanDiffuser ``DQLCritic`` =
    ``TwinQ(..., n_layers=3, layer_norm=True, activation="mish", first_activation="tanh")`` (see :meth:`cd_dql`).
    forward(obs (B, obs_dim), act (B, act_dim)) -> (q1 (B,), q2 (B,)); q_min -> (B,).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: int = 256,
        n_layers: int = 2,
        layer_norm: bool = True,
        activation: str = "mish",
        first_activation: str | None = None,
    ) -> None:
        super().__init__()
        self.q1, self.q2 = (MLP(obs_dim + act_dim, 1, hidden, n_layers, activation, layer_norm, first_activation) for _ in range(2))

    @classmethod
    def cd_dql(cls, obs_dim: int, act_dim: int, hidden: int = 256) -> "TwinQ":
        """CleanDiffuser ``DQLCritic``: Linear-LN-Tanh, 2 x Linear-LN-Mish, Linear(1), per head."""
        return cls(obs_dim, act_dim, hidden, n_layers=3, layer_norm=True, activation="mish", first_activation="tanh")

    def forward(self, obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([obs, act], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def q_min(self, obs: Tensor, act: Tensor) -> Tensor:
        """Pessimistic min(Q1, Q2): (B,)."""
        return torch.minimum(*self(obs, act))


class ValueNet(nn.Module):
    """V(obs) = MLP(obs) -> 1; defaults = CleanDiffuser IQL ``V`` (2 x 256, LayerNorm, Mish). obs (B, obs_dim) -> (B,)."""

    def __init__(
        self,
        obs_dim: int,
        hidden: int = 256,
        n_layers: int = 2,
        layer_norm: bool = True,
        activation: str = "mish",
        input_layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.net = MLP(obs_dim, 1, hidden, n_layers, activation, layer_norm, input_layer_norm=input_layer_norm)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs).squeeze(-1)
