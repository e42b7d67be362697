"""`studio info`: versions, compute devices that really work, audio and plugins — and broken
packages reported, never raised (simulated with a real import hook)."""

from __future__ import annotations

import importlib.abc
import json
import shutil
import sys
from pathlib import Path

import numpy
import pytest

import studio
from studio import info as studio_info
from studio.info import INSPECTED_PACKAGES, collect_info, format_info
from studio.plugins import default_registry

NVIDIA_GPU_VISIBLE = Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None
skip_if_gpu = pytest.mark.skipif(NVIDIA_GPU_VISIBLE, reason="an NVIDIA GPU is visible on this machine")


@pytest.fixture(scope="module")
def info():
    return collect_info()


class _ImportBreaker(importlib.abc.MetaPathFinder):
    """Makes ``import <name>`` raise ``error`` — like a package with a broken binary."""

    def __init__(self, errors_by_module: dict[str, BaseException]):
        self.errors_by_module = errors_by_module

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.errors_by_module:
            raise self.errors_by_module[fullname]
        return None


@pytest.fixture
def break_imports(monkeypatch):
    """``break_imports({"torch": RuntimeError(...)})``: those imports now fail (undone afterwards)."""

    def breaker(errors_by_module: dict[str, BaseException]) -> None:
        for module_name in errors_by_module:
            monkeypatch.delitem(sys.modules, module_name, raising=False)
        monkeypatch.setattr(sys, "meta_path", [_ImportBreaker(errors_by_module), *sys.meta_path])

    return breaker


def test_info_names_studio_python_and_every_inspected_package(info):
    assert info["studio"]["version"] == studio.__version__
    assert info["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert [name for name, _ in INSPECTED_PACKAGES] == list(info["packages"])
    assert info["packages"]["numpy"] == {"version": numpy.__version__, "problem": None}
    for name, package in info["packages"].items():
        assert (package["version"] is None) != (package["problem"] is None), name


def test_info_is_plain_json_serializable_data(info):
    assert json.loads(json.dumps(info)) == info


def test_torch_cpu_really_works(info):
    assert info["torch"]["version"].startswith("2.")
    assert info["torch"]["cpu"] == {"works": True, "reason": None}


def test_onnxruntime_cpu_provider_really_runs_a_model(info):
    onnx_info = info["onnxruntime"]
    assert onnx_info["error"] is None
    assert "CPUExecutionProvider" in onnx_info["working"]
    assert set(onnx_info["working"]) <= set(onnx_info["requested"]) <= set(onnx_info["available"])


@skip_if_gpu
def test_cuda_is_reported_not_working_on_a_cpu_machine(info):
    torch_cuda = info["torch"]["cuda"]
    assert torch_cuda["works"] is False and torch_cuda["reason"]
    onnx_info = info["onnxruntime"]
    assert "CUDAExecutionProvider" not in onnx_info["working"]
    if "CUDAExecutionProvider" in onnx_info["available"]:  # onnxruntime-gpu lists it regardless
        assert "CUDAExecutionProvider" in onnx_info["not_working"]
        assert onnx_info["cuda_reason"]


def test_audio_reports_device_counts_or_why_not(info):
    audio = info["audio"]
    if audio["works"]:
        assert audio["output_devices"] >= 0 and audio["input_devices"] >= 0
        assert "PortAudio" in audio["portaudio"]
    else:
        assert audio["reason"]


def test_plugins_summary_matches_the_default_registry(info):
    registry = default_registry()
    assert info["plugins"]["counts"] == registry.counts()
    assert info["plugins"]["errors"] == [str(error) for error in registry.errors]


def test_format_info_has_the_key_lines(info):
    text = format_info(info)
    assert f"Talking Head Studio {studio.__version__}" in text
    assert f"  numpy         {numpy.__version__}" in text
    assert "    CPU: works" in text
    assert "providers that work: " in text and "CPUExecutionProvider" in text
    for heading in ("Packages", "Compute devices", "Audio", "Plugins"):
        assert f"\n{heading}\n" in text
    assert "load errors: " in text


def test_broken_and_missing_packages_are_reported_not_raised(break_imports, monkeypatch):
    break_imports({"trimesh": RuntimeError("simulated broken wheel")})
    monkeypatch.setitem(sys.modules, "vispy", None)  # Python's own way to say "not importable"
    packages = collect_info()["packages"]
    assert packages["trimesh"] == {
        "version": None,
        "problem": "import failed: RuntimeError: simulated broken wheel",
    }
    assert packages["vispy"] == {"version": None, "problem": "not installed"}
    assert packages["numpy"]["version"] == numpy.__version__


def test_broken_compute_and_audio_stacks_are_reported_not_raised(break_imports):
    break_imports(
        {
            "torch": ImportError("libtorch_cpu.so: cannot open shared object file"),
            "onnxruntime": RuntimeError("simulated broken onnxruntime"),
            "sounddevice": OSError("PortAudio library not found"),
        }
    )
    info = collect_info()
    assert "libtorch_cpu.so" in info["torch"]["error"]
    assert "simulated broken onnxruntime" in info["onnxruntime"]["error"]
    assert info["audio"]["works"] is False and "libportaudio2" in info["audio"]["reason"]
    text = format_info(info)
    assert "torch: torch cannot be imported: ImportError: libtorch_cpu.so" in text
    assert "audio: not available — PortAudio library not found" in text


def test_a_failing_probe_becomes_an_error_entry(monkeypatch):
    def _plugins_info():
        raise RuntimeError("registry exploded")

    monkeypatch.setattr(studio_info, "_plugins_info", _plugins_info)
    info = collect_info()
    assert info["plugins"] == {"error": "_plugins_info failed: RuntimeError: registry exploded"}
    assert "_plugins_info failed" in format_info(info)
