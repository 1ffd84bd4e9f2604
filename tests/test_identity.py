"""Model fingerprints: the device type resolves without importing torch where it can."""

import sys

import pytest

from harness.backends import identity


def test_auto_device_matches_torch():
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"

    assert identity.device_type("auto") == expected


def test_explicit_device_keeps_its_type():
    assert identity.device_type("cuda:1") == "cuda"
    assert identity.device_type("cpu") == "cpu"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="GPU device files are Linux's")
def test_gpu_device_file_asks_torch(monkeypatch, tmp_path):
    device_file = tmp_path / "nvidiactl"
    device_file.touch()
    monkeypatch.setattr(identity, "GPU_DEVICE_FILES", (str(device_file),))
    requested = []
    monkeypatch.setattr(identity, "select_device", lambda name: requested.append(name) or "cuda")

    assert identity.device_type("auto") == "cuda"
    assert requested == ["auto"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="GPU device files are Linux's")
def test_no_gpu_device_file_skips_torch(monkeypatch, tmp_path):
    monkeypatch.setattr(identity, "GPU_DEVICE_FILES", (str(tmp_path / "missing"),))
    monkeypatch.setattr(identity, "select_device", lambda name: pytest.fail("torch was asked"))

    assert identity.device_type("auto") == "cpu"
