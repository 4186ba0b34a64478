"""onnxruntime as a latency runtime: a module's ONNX graph and an onnxruntime session that runs it on the CPU.

:func:`~nasvit.latency.measure.measure_modules_interleaved` times these runners with the warm-up, rounds and
statistics of PyTorch's timings, so the two runtimes' figures compare. Sessions run on onnxruntime's CPU provider
with its default graph optimisations (which fold BatchNorm as PyTorch's inference form does); ``threads`` sets the
intra-op threads (None: torch's current thread count, so that both runtimes read the setting alike) with one
inter-op thread.
"""

from __future__ import annotations

import io
import warnings
import weakref
from collections.abc import Callable

import torch
from torch import nn

from nasvit.errors import NasvitError

ONNX_OPSET = 17
_GRAPHS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], bytes]] = weakref.WeakKeyDictionary()


def onnxruntime_available() -> bool:
    """Whether onnx and onnxruntime are installed (the ``onnx`` extra)."""
    try:
        require_onnxruntime("")
    except NasvitError:
        return False
    return True


def require_onnxruntime(what: str) -> None:
    """Raise a clear error, naming ``what`` needs them, where onnx or onnxruntime is not installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise NasvitError(f"{what} needs onnx and onnxruntime: pip install 'nasvit[onnx]'") from None


def module_to_onnx(module: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """The ONNX graph (bytes) of eval-mode ``module`` traced on a float32 input of ``input_shape``, batch dynamic.

    Each module's graph is made once per shape and kept while the module lives: exporting is slower than timing (a
    whole ``nasvit`` subnet takes seconds), and noisy timings are timed again on the same modules.
    """
    graphs = _GRAPHS.setdefault(module, {})
    if input_shape not in graphs:
        graphs[input_shape] = _export(module, input_shape)
    return graphs[input_shape]


@torch.inference_mode(False)
def _export(module: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    module = module.float().eval()
    with warnings.catch_warnings(), torch.no_grad():  # the tracer warns about shape-dependent branches (static here)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(input_shape),),
            buffer,
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["input"],
            dynamic_axes={"input": {0: "batch"}},
        )
    return buffer.getvalue()


def onnx_session(payload: bytes, threads: int | None):
    """An onnxruntime ``InferenceSession`` of the ONNX bytes ``payload`` on the CPU."""
    require_onnxruntime("latency runtime onnxruntime")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads or torch.get_num_threads(), 1
    return onnxruntime.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


def onnx_runner(payload: bytes, threads: int | None) -> Callable[[torch.Tensor], None]:
    """A callable that runs the ONNX graph ``payload`` on a (B, C, H, W) float32 CPU tensor in one session."""
    session = onnx_session(payload, threads)
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> None:
        session.run(None, {name: x.numpy()})

    return run


def onnxruntime_version() -> str:
    """The installed onnxruntime's version (a clear error where there is none)."""
    require_onnxruntime("latency runtime onnxruntime")
    import onnxruntime

    return onnxruntime.__version__
