"""`hybridgen worker` shares the CPU cores among its processes' torch threads (before they import torch)."""

from __future__ import annotations

import os

from hybridgen.commands.worker import _limit_torch_threads


def test_each_process_gets_its_share_of_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    _limit_torch_threads(0, processes=2)
    assert os.environ["OMP_NUM_THREADS"] == "4"
    _limit_torch_threads(0, processes=16)
    assert os.environ["OMP_NUM_THREADS"] == "4"  # already set: an explicit environment wins


def test_at_least_one_thread_and_the_setting_wins(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    _limit_torch_threads(0, processes=4)
    assert os.environ["OMP_NUM_THREADS"] == "1"
    _limit_torch_threads(3, processes=4)  # HYBRIDGEN_TORCH_THREADS=3
    assert os.environ["OMP_NUM_THREADS"] == "3"
