"""Device and backend choice for pretraining: CPU + gloo here, cuda:LOCAL_RANK + NCCL where torch sees GPUs.

This machine has no GPU, so the CUDA branch is checked by its decisions (torch.cuda availability is
patched); the CPU branch is exercised for real by every training test.
"""

from __future__ import annotations

import pytest
import torch

from domainlm import machine
from domainlm.errors import UserError
from domainlm.pretrain.distributed import init_distributed


def test_auto_is_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    dev = machine.resolve_device("auto")
    assert dev == torch.device("cpu")
    assert machine.dist_backend(dev) == "gloo"


def test_asking_for_cuda_without_a_gpu_names_the_setting_and_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError) as e:
        machine.resolve_device("cuda")
    assert "speed.device=cuda" in str(e.value)
    assert "speed.device=auto" in e.value.fix


def test_each_torchrun_process_takes_the_gpu_of_its_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    for setting in ("auto", "cuda"):
        dev = machine.resolve_device(setting, local_rank=3)
        assert dev == torch.device("cuda", 3)
        assert machine.dist_backend(dev) == "nccl"
    # an explicit cpu wins over a present GPU
    assert machine.resolve_device("cpu", local_rank=3) == torch.device("cpu")


def test_more_processes_than_gpus_is_refused_with_the_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UserError) as e:
        machine.resolve_device("auto", local_rank=2)
    assert "has 2" in str(e.value) and "--nproc-per-node=2" in e.value.fix


def test_a_single_process_joins_no_group_and_records_its_device(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    d = init_distributed("auto")
    assert (d.world, d.rank, d.enabled, d.owned) == (1, 0, False, False)
    assert d.device == torch.device("cpu")


def test_bf16_auto_follows_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert machine.resolve_bf16("auto", "cuda") is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert machine.resolve_bf16("auto", "cuda") is True
    assert machine.resolve_bf16("off", "cuda") is False
    assert machine.resolve_bf16("auto", "cpu") is machine.has_fast_bf16()
