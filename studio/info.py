"""What this installation really has: versions, compute devices that work, audio, plugins.

``collect_info()`` returns plain, JSON-serializable data (for ``studio info`` and bug reports);
``format_info()`` turns it into readable text. Nothing here trusts a flag alone: a compute
device counts as working only after a tiny computation on it succeeded (torch: a tensor op;
onnxruntime: a one-node ONNX model run through an InferenceSession, reporting the providers
the session really got). Every probe is guarded, so a broken package is reported, never raised.
Heavy imports (torch, onnxruntime, …) happen inside the probes, only when info is collected.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import sys
from collections.abc import Callable
from typing import Any

import studio

# (import name, distribution name used when the module has no __version__)
INSPECTED_PACKAGES: tuple[tuple[str, str], ...] = (
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("torch", "torch"),
    ("onnxruntime", "onnxruntime-gpu"),
    ("onnx", "onnx"),
    ("PySide6", "PySide6-Essentials"),
    ("pyqtgraph", "pyqtgraph"),
    ("vispy", "vispy"),
    ("av", "av"),
    ("soundfile", "soundfile"),
    ("sounddevice", "sounddevice"),
    ("pocketsphinx", "pocketsphinx"),
    ("cv2", "opencv-python"),
    ("mediapipe", "mediapipe"),
    ("trimesh", "trimesh"),
)

NOT_INSTALLED = "not installed"
ONNX_PROVIDERS_TO_TRY = ("CUDAExecutionProvider", "CPUExecutionProvider")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _guarded(probe: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Runs one probe; an unexpected failure becomes ``{"error": ...}`` instead of a crash."""
    try:
        return probe()
    except Exception as error:
        return {"error": f"{probe.__name__} failed: {_describe(error)}"}


def _package_info(module_name: str, distribution_name: str) -> dict[str, Any]:
    """``{"version": str | None, "problem": None | "not installed" | "<error>"}``."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            return {"version": None, "problem": NOT_INSTALLED}
        return {"version": None, "problem": f"import failed: {_describe(error)}"}
    except Exception as error:  # a broken install (missing shared library, bad wheel, …)
        return {"version": None, "problem": f"import failed: {_describe(error)}"}
    version = getattr(module, "__version__", None)
    if not isinstance(version, str):
        try:
            version = importlib.metadata.version(distribution_name)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    return {"version": version, "problem": None}


def _packages_info() -> dict[str, Any]:
    return {module: _package_info(module, dist) for module, dist in INSPECTED_PACKAGES}


def _torch_info() -> dict[str, Any]:
    """torch's CPU and CUDA (and Apple MPS) devices, each proven by a tiny tensor op."""
    try:
        import torch
    except Exception as error:
        return {"version": None, "error": f"torch cannot be imported: {_describe(error)}"}
    info: dict[str, Any] = {"version": torch.__version__, "cuda_build": torch.version.cuda}
    try:
        works = float((torch.ones(4) * 2).sum().item()) == 8.0
        info["cpu"] = {"works": works, "reason": None if works else "wrong result of a tensor op"}
    except Exception as error:
        info["cpu"] = {"works": False, "reason": _describe(error)}
    info["cuda"] = _torch_cuda_info(torch)
    mps_backend = getattr(torch.backends, "mps", None)
    if mps_backend is not None and mps_backend.is_available():
        info["mps"] = _torch_device_check(torch, "mps", device_name="Apple MPS")
    return info


def _device_status(works: bool, device_name: str | None, reason: str | None) -> dict[str, Any]:
    return {"works": works, "device_name": device_name, "reason": reason}


def _torch_cuda_info(torch: Any) -> dict[str, Any]:
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return _device_status(False, None, "this torch build has no CUDA support")
    try:
        available = torch.cuda.is_available()
    except Exception as error:
        return _device_status(False, None, f"torch.cuda.is_available() raised {_describe(error)}")
    if not available:
        reason = "torch.cuda.is_available() is False (no NVIDIA GPU or driver visible)"
        return _device_status(False, None, reason)
    try:
        device_name = torch.cuda.get_device_name(0)
    except Exception as error:
        device_name = f"unknown ({_describe(error)})"
    return _torch_device_check(torch, "cuda", device_name=device_name)


def _torch_device_check(torch: Any, device: str, device_name: str) -> dict[str, Any]:
    try:
        result = float((torch.ones(4, device=device) * 2).sum().item())
    except Exception as error:
        return _device_status(False, device_name, f"a tensor op on {device} failed: {_describe(error)}")
    if result != 8.0:
        return _device_status(False, device_name, f"a tensor op on {device} gave {result}, not 8")
    return _device_status(True, device_name, None)


def _tiny_onnx_model_bytes() -> bytes:
    """A one-node ONNX model: ``total = a + b`` over float32 vectors of length 4."""
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [4]) for name in ("a", "b")]
    output = helper.make_tensor_value_info("total", TensorProto.FLOAT, [4])
    add = helper.make_node("Add", ["a", "b"], ["total"])
    graph = helper.make_graph([add], "studio_info_add", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # old enough for every onnxruntime we support
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _onnxruntime_info() -> dict[str, Any]:
    """Providers onnxruntime lists, and those that really ran a one-node model."""
    try:
        import onnxruntime
    except Exception as error:
        return {"version": None, "error": f"onnxruntime cannot be imported: {_describe(error)}"}
    # Creating a session with an unloadable CUDA provider logs an error and falls back to CPU;
    # stay silent during the probe (the reason is reported below), then keep errors-only.
    onnxruntime.set_default_logger_severity(4)
    available = list(onnxruntime.get_available_providers())
    requested = [provider for provider in ONNX_PROVIDERS_TO_TRY if provider in available]
    info: dict[str, Any] = {
        "version": onnxruntime.__version__,
        "available": available,
        "requested": requested,
        "working": [],
        "not_working": requested,
        "not_tried": [provider for provider in available if provider not in requested],
        "cuda_reason": None,
        "error": None,
    }
    try:
        import numpy as np

        session = onnxruntime.InferenceSession(_tiny_onnx_model_bytes(), providers=requested)
        a = np.arange(4, dtype=np.float32)
        (total,) = session.run(None, {"a": a, "b": a})
        if not np.array_equal(total, 2 * a):
            raise RuntimeError(f"the test model computed {total.tolist()}, not {(2 * a).tolist()}")
    except Exception as error:
        info["error"] = f"a one-node test model did not run: {_describe(error)}"
        return info
    finally:
        onnxruntime.set_default_logger_severity(3)
    working = list(session.get_providers())
    info["working"] = working
    info["not_working"] = [provider for provider in requested if provider not in working]
    if "CUDAExecutionProvider" in info["not_working"]:
        info["cuda_reason"] = _onnxruntime_cuda_failure_reason(onnxruntime)
    return info


def _onnxruntime_cuda_failure_reason(onnxruntime: Any) -> str:
    """Why the CUDA provider did not come up: its library's own load error, when it has one."""
    import ctypes
    from pathlib import Path

    if sys.platform == "win32":
        library_name = "onnxruntime_providers_cuda.dll"
    else:
        library_name = "libonnxruntime_providers_cuda.so"
    library = Path(onnxruntime.__file__).parent / "capi" / library_name
    if not library.is_file():
        return f"{library_name} is not part of this onnxruntime build"
    try:
        ctypes.CDLL(str(library))
    except OSError as error:
        return f"its library does not load: {error}"
    return "its library loads, but the session did not get it (no usable NVIDIA GPU or driver)"


def _sounddevice_info() -> dict[str, Any]:
    """PortAudio through sounddevice: device counts, or why audio I/O is unavailable."""
    try:
        import sounddevice
    except OSError as error:
        reason = f"PortAudio library not found (apt install libportaudio2): {error}"
        return {"works": False, "reason": reason}
    except Exception as error:
        return {"works": False, "reason": f"sounddevice cannot be imported: {_describe(error)}"}
    try:
        devices = list(sounddevice.query_devices())
        portaudio_version = sounddevice.get_portaudio_version()[1]
    except Exception as error:
        return {"works": False, "reason": f"PortAudio could not list devices: {_describe(error)}"}
    return {
        "works": True,
        "reason": None,
        "portaudio": portaudio_version,
        "output_devices": sum(1 for device in devices if device["max_output_channels"] > 0),
        "input_devices": sum(1 for device in devices if device["max_input_channels"] > 0),
    }


def _plugins_info() -> dict[str, Any]:
    from studio.plugins import default_registry

    registry = default_registry()
    return {
        "counts": registry.counts(),
        "exporters": [spec.name for spec in registry.exporters()],
        "importers": [spec.name for spec in registry.importers()],
        "generators": [spec.name for spec in registry.generators()],
        "errors": [str(error) for error in registry.errors],
    }


def collect_info() -> dict[str, Any]:
    """Everything ``studio info`` reports, as JSON-serializable plain data."""
    return {
        "studio": {"version": studio.__version__, "location": str(studio.__path__[0])},
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": platform.platform(),
        "packages": _guarded(_packages_info),
        "torch": _guarded(_torch_info),
        "onnxruntime": _guarded(_onnxruntime_info),
        "audio": _guarded(_sounddevice_info),
        "plugins": _guarded(_plugins_info),
    }


def _format_torch(torch_info: dict[str, Any]) -> list[str]:
    if torch_info.get("error"):
        return [f"  torch: {torch_info['error']}"]
    lines = [f"  torch {torch_info['version']}"]
    for device in ("cpu", "cuda", "mps"):
        device_info = torch_info.get(device)
        if device_info is None:
            continue
        if device_info["works"]:
            name = f" ({device_info['device_name']})" if device_info.get("device_name") else ""
            lines.append(f"    {device.upper()}: works{name}")
        else:
            lines.append(f"    {device.upper()}: not working — {device_info['reason']}")
    return lines


def _format_onnxruntime(onnx_info: dict[str, Any]) -> list[str]:
    if onnx_info.get("version") is None:
        return [f"  onnxruntime: {onnx_info.get('error')}"]
    lines = [f"  onnxruntime {onnx_info['version']}"]
    if onnx_info.get("error"):
        lines.append(f"    {onnx_info['error']}")
    lines.append(f"    providers that work: {', '.join(onnx_info['working']) or 'none'}")
    if onnx_info["not_working"]:
        lines.append(f"    available but not working: {', '.join(onnx_info['not_working'])}")
    if onnx_info.get("cuda_reason"):
        lines.append(f"    CUDAExecutionProvider: {onnx_info['cuda_reason']}")
    if onnx_info["not_tried"]:
        lines.append(f"    available, not tried: {', '.join(onnx_info['not_tried'])}")
    return lines


def _format_audio(audio_info: dict[str, Any]) -> list[str]:
    if not audio_info.get("works"):
        return [f"  audio: not available — {audio_info.get('reason') or audio_info.get('error')}"]
    return [
        f"  audio ({audio_info['portaudio']}): {audio_info['output_devices']} output device(s), "
        f"{audio_info['input_devices']} input device(s)"
    ]


def _format_plugins(plugins_info: dict[str, Any]) -> list[str]:
    if "counts" not in plugins_info:
        return [f"  {plugins_info.get('error')}"]
    counts = ", ".join(f"{count} {category}" for category, count in plugins_info["counts"].items())
    lines = [f"  {counts}"]
    for category in ("exporters", "importers", "generators"):
        if plugins_info[category]:
            lines.append(f"    {category}: {', '.join(plugins_info[category])}")
    errors = plugins_info["errors"]
    lines.append(f"  load errors: {len(errors)}")
    lines.extend(f"    {error}" for error in errors)
    return lines


def format_info(info: dict[str, Any]) -> str:
    """``collect_info()``'s result as readable text, one fact per line."""
    python = info["python"]
    lines = [
        f"Talking Head Studio {info['studio']['version']} ({info['studio']['location']})",
        f"Python {python['version']} ({python['implementation']}, {python['executable']})",
        f"Platform {info['platform']}",
        "",
        "Packages",
    ]
    packages = info["packages"]
    if "error" in packages:
        lines.append(f"  {packages['error']}")
    else:
        width = max(len(name) for name in packages)
        for name, package in packages.items():
            lines.append(f"  {name:<{width}}  {package['version'] or package['problem']}")
    lines += ["", "Compute devices"]
    lines += _format_torch(info["torch"])
    lines += _format_onnxruntime(info["onnxruntime"])
    lines += ["", "Audio"]
    lines += _format_audio(info["audio"])
    lines += ["", "Plugins"]
    lines += _format_plugins(info["plugins"])
    return "\n".join(lines) + "\n"
