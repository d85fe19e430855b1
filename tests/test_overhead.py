"""Per-call overhead cuts keep values: an actor and a critic run as one batch of circuits give the values and
gradients of one call each, to the bit; the unitary cache follows the weights; training stays deterministic for
a seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO

from qrl.sb3 import VQCActorCriticPolicy

OBS = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
ACT = spaces.Discrete(2)


def _policy(dtype: str = "float32", **kwargs) -> VQCActorCriticPolicy:
    torch.manual_seed(0)
    return VQCActorCriticPolicy(OBS, ACT, lambda _: 1e-3, dtype=dtype, device="torch", **kwargs)


def _values_and_grads(policy, extractor_call, x: torch.Tensor) -> list[torch.Tensor]:
    policy.zero_grad()
    actor, critic = extractor_call(x)
    (torch.log_softmax(actor, -1)[:, 0].sum() + critic.square().sum()).backward()
    return [actor.detach(), critic.detach()] + [p.grad.clone() for p in policy.parameters()]


def _separate(policy):
    ex = policy.mlp_extractor
    return lambda x: (ex.forward_actor(x), ex.forward_critic(x))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [1, 2, 3, 8, 64, 256])
@pytest.mark.parametrize("options", [{}, {"readout": "zz"}, {"obs_map": "tanh", "n_layers": 2}], ids=str)
def test_actor_and_critic_together_equal_one_call_each(dtype, batch, options):
    policy = _policy(dtype, **options)
    x = torch.randn(batch, 4, generator=torch.Generator().manual_seed(batch)) * 2
    together = _values_and_grads(policy, policy.mlp_extractor, x)
    separate = _values_and_grads(policy, _separate(policy), x)
    assert all(torch.equal(a, b) for a, b in zip(together, separate, strict=True))
    with torch.no_grad():  # the rollout path, twice: built unitaries, then cached ones
        for _ in range(2):
            ys = policy.mlp_extractor(x)
            assert all(torch.equal(y, s) for y, s in zip(ys, _separate(policy)(x), strict=True))


def test_circuits_of_different_structure_run_one_call_each():
    policy = _policy(actor={"n_layers": 2})
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    together = _values_and_grads(policy, policy.mlp_extractor, x)
    separate = _values_and_grads(policy, _separate(policy), x)
    assert all(torch.equal(a, b) for a, b in zip(together, separate, strict=True))


def test_cached_unitaries_follow_in_place_weight_updates():
    policy = _policy()
    ex = policy.mlp_extractor
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = ex(x)
        ex.value_net.vqc.weights.data.add_(0.1)  # as SB3's polyak update writes target networks
        after = ex(x)
        single = ex.forward_critic(x)  # the critic's own (single-circuit) cache, next to the pair's
    assert torch.equal(before[0], after[0]) and not torch.equal(before[1], after[1])
    assert torch.equal(after[1], single)


def test_ppo_training_is_deterministic_for_a_seed():
    def train() -> list[torch.Tensor]:
        model = PPO(VQCActorCriticPolicy, "CartPole-v1", n_steps=32, batch_size=32, n_epochs=2, seed=3,
                    device="cpu", policy_kwargs={"n_layers": 2})
        model.learn(64)
        return [p.detach().clone() for p in model.policy.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(train(), train(), strict=True))


def test_ppo_training_in_chunks_is_deterministic_for_a_seed(monkeypatch):
    """Where the minibatch does not fit in memory at once, auto runs it in chunks (here 8 of 32, the machine's memory
    made small): training stays deterministic for a seed, whether the chunks' states were kept or computed again."""
    from qrl.backends import select
    from qrl.backends.chunks import Chunks
    from qrl.backends.dispatch import cpu_backend
    from qrl.backends.torch import TorchStatevector

    def model():
        return PPO(VQCActorCriticPolicy, "CartPole-v1", n_steps=32, batch_size=32, n_epochs=2, seed=3, device="cpu",
                   policy_kwargs={"n_layers": 2})

    kernel = cpu_backend(model().policy.mlp_extractor.policy_net.vqc.backend, 8)
    assert isinstance(kernel, TorchStatevector) and kernel.program == "native"
    monkeypatch.setattr(select, "physical_memory",
                        lambda: int(kernel.gradient_bytes(8) / select.AUTO_MEMORY_FRACTION) + 1)

    def train() -> list[torch.Tensor]:
        ppo = model()
        actor = ppo.policy.mlp_extractor.policy_net.vqc.backend
        assert isinstance(cpu_backend(actor, 32), Chunks) and cpu_backend(actor, 32).size == 8
        ppo.learn(64)
        return [p.detach().clone() for p in ppo.policy.parameters()]

    monkeypatch.setattr(Chunks, "keeps", lambda self, batch, itemsize=8: True)  # every chunk's state kept
    kept = train()
    monkeypatch.setattr(Chunks, "keeps", lambda self, batch, itemsize=8: False)  # every chunk computed again
    again = train()
    assert all(torch.equal(a, b) for a, b in zip(kept, again, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(again, train(), strict=True))
