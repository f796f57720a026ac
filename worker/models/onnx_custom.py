"""A user's own ONNX saliency graph, as a :class:`~cutq.worker.models.onnx_spec.ModelSpec` says.

``CUTQ_MODEL_SPEC=birefnet.json`` (or ``--model-spec``) serves it instead of u2netp. At start-up
the file is fetched (local path, ``file://`` or ``gs://`` into the checkpoint cache), its sha256
checked when the spec pins one, and the graph loaded with onnxruntime: on CUDA's execution
provider when the worker runs on a GPU (``CUTQ_DEVICE=cuda`` requires it and stops, naming
what to install, when onnxruntime has none; ``auto`` falls back to the CPU with a warning),
on the CPU otherwise. Before any warm-up, :meth:`CustomOnnx.setup` checks the spec against
the graph and runs one probe, so a wrong spec stops the worker with a message naming the
field, not a failed job per image. The runner's warm-up then checks what every model must do:
finite maps in [0, 1] that find a disc.

On a CPU the graph runs in streams like u2netp (:class:`~cutq.worker.models.onnx_engine.Graph`;
one stream unless ``CUTQ_STREAMS`` says more: these graphs are large). A graph whose batch axis is
fixed at 1 (many published exports) is run image by image. A graph declaring float16 input
(GPU exports often do) is fed float16; its float16 maps are read back as float32. On CUDA's
execution provider the graph runs through I/O binding (:class:`NamedGraph`): the output is
allocated by onnxruntime on the GPU, only the one map asked for is copied back.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from cutq.core.contract import Resize
from cutq.core.errors import ConfigError
from cutq.core.storage import Stores
from cutq.worker.models import onnx_engine
from cutq.worker.models.base import Model
from cutq.worker.models.fetch import fetch_checkpoint, file_sha256
from cutq.worker.models.onnx_spec import ModelSpec

log = logging.getLogger(__name__)


class CustomOnnx(Model):
    """Any single-input, saliency-map ONNX graph, as its spec describes it."""

    engine = "onnxruntime"

    def __init__(
        self,
        spec: ModelSpec,
        cache_dir: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        streams: int | None = None,
        placement: onnx_engine.Placement = onnx_engine.CPU,
        storage: Stores | None = None,
    ) -> None:
        """``storage``: the worker's backends, to fetch a ``gs://`` graph through.
        ``placement`` on CUDA: run on CUDA's execution provider, one stream (a required
        placement stops at setup when this onnxruntime has none; ``auto``'s falls back to the
        CPU with a warning: :func:`~cutq.worker.models.onnx_engine.providers_for`)."""
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be ≥ 1, got {threads}")
        if streams is not None and streams < 1:
            raise ValueError(f"streams must be ≥ 1, got {streams}")
        self.spec = spec
        self.name = spec.name  # type: ignore[misc]  # per instance: the spec names it
        self.license = spec.license
        self.commercial_use = spec.commercial_use
        self.cache_dir = cache_dir
        self.threads = threads or onnx_engine.cpu_count()
        self.streams = 1 if placement.cuda else (streams or 1)
        self.placement = placement
        self.storage = storage
        self.onnx_device = placement.device
        self.path: Path | None = None
        self.input_name = ""
        self.output_name = ""
        self.batch_of_one = False  # the graph's batch axis is fixed at 1
        self.input_dtype: type[np.floating[Any]] = np.float32  # float16 for fp16 graphs
        self._graph: NamedGraph | None = None

    def setup(self, device: Any = "cpu") -> None:
        """Fetch and pin the file, load the graph, check the spec against it, run a probe."""
        spec = self.spec
        self.path = fetch_checkpoint(spec.file, self.cache_dir, spec.sha256, self.storage)
        self.version = spec.version or (spec.sha256 or file_sha256(self.path))[:12].lower()
        try:
            graph = NamedGraph(
                self.path,
                self.threads,
                self.streams,
                onnx_engine.Streams(),
                placement=self.placement,
            )
        except ConfigError:  # no CUDA provider where one is required: says what to install
            raise
        except Exception as error:  # onnxruntime's own errors: not a graph it can load
            raise ConfigError(f"model {spec.name}: cannot load {spec.file}: {error}") from None
        self.onnx_device = graph.placement.device
        self._check_graph(graph.wide)
        graph.names = (self.input_name, self.output_name)
        self._graph = graph
        self._probe()
        spec = self.spec  # with input_size read from a fixed graph
        terms = self.terms()
        log.info(
            "custom model %s %s loaded from %s on %s (input %s, %s, %s); licence %s, "
            "commercial use %s",
            spec.name,
            self.version,
            self.path,
            "CUDA's execution provider on " + self.onnx_device
            if graph.placement.cuda
            else "the CPU",
            "dynamic" if spec.dynamic else "×".join(map(str, spec.static_size())),
            spec.layout,
            np.dtype(self.input_dtype).name,
            terms["license"],
            terms["commercial_use"],
        )

    def _check_graph(self, session: Any) -> None:
        """The spec's claims against the graph's declared inputs and outputs."""
        spec, name = self.spec, self.spec.name
        inputs = session.get_inputs()
        if len(inputs) != 1:
            listed = ", ".join(i.name for i in inputs)
            raise ConfigError(
                f"model {name}: the graph takes {len(inputs)} inputs ({listed}); "
                "cutq serves graphs with one image input"
            )
        declared = list(inputs[0].shape)
        self.input_name = inputs[0].name
        kinds = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
        if inputs[0].type not in kinds:
            raise ConfigError(
                f"model {name}: input {self.input_name} is {inputs[0].type}; cutq feeds "
                "float32 or float16 images"
            )
        self.input_dtype = kinds[inputs[0].type]
        if len(declared) != 4:
            raise ConfigError(
                f"model {name}: input {self.input_name} has shape {declared}; "
                "expected 4 axes (batch, channels, height, width)"
            )
        channel_axis, spatial = (1, (2, 3)) if spec.layout == "nchw" else (3, (1, 2))
        if isinstance(declared[channel_axis], int) and declared[channel_axis] != 3:
            other = "nhwc" if spec.layout == "nchw" else "nchw"
            raise ConfigError(
                f"model {name}: input {self.input_name} {declared} has "
                f"{declared[channel_axis]} channels where layout {spec.layout} puts them; "
                f"is the layout {other}?"
            )
        self.batch_of_one = declared[0] == 1
        fixed = [declared[axis] for axis in spatial]
        if all(isinstance(v, int) and v > 0 for v in fixed):
            if spec.dynamic:
                raise ConfigError(
                    f"model {name}: the spec says dynamic, but the graph's input "
                    f"{self.input_name} is fixed at {fixed[0]}×{fixed[1]}"
                )
            if spec.input_size is None:
                self.spec = spec.with_input_size((fixed[0], fixed[1]))
            elif tuple(spec.input_size) != tuple(fixed):
                raise ConfigError(
                    f"model {name}: input_size {list(spec.input_size)} but the graph's input "
                    f"{self.input_name} is fixed at {fixed[0]}×{fixed[1]}"
                )
        elif spec.input_size is None:
            raise ConfigError(
                f"model {name}: the graph's input {self.input_name} {declared} "
                "has no fixed size; the spec needs input_size [height, width]"
            )
        outputs = [o.name for o in session.get_outputs()]
        if isinstance(spec.output, str):
            if spec.output not in outputs:
                raise ConfigError(
                    f"model {name}: no output named {spec.output!r}; "
                    f"the graph has {', '.join(outputs)}"
                )
            self.output_name = spec.output
        else:
            if not -len(outputs) <= spec.output < len(outputs):
                raise ConfigError(
                    f"model {name}: output index {spec.output} but the graph has "
                    f"{len(outputs)} output(s): {', '.join(outputs)}"
                )
            self.output_name = outputs[spec.output]

    def _probe(self) -> None:
        """One forward at the static size (and a smaller one when dynamic): shapes must fit."""
        sizes = [self.spec.static_size()]
        if self.spec.dynamic:
            sizes.append(self.spec.size_for(96, 160, "dynamic"))
        for size in sizes:
            batch = np.zeros((1, 3, *size), np.float32)
            try:
                self.predict(batch)
            except ValueError as error:
                raise ConfigError(f"model {self.spec.name}: {error}") from None
            except Exception as error:  # onnxruntime refused the input
                raise ConfigError(
                    f"model {self.spec.name}: the graph failed on a 1×3×{size[0]}×{size[1]} "
                    f"input ({type(error).__name__}: {str(error)[:300]}); check input_size, "
                    "dynamic and layout"
                ) from None

    def input_size(self, height: int, width: int, resize: Resize) -> tuple[int, int]:
        """See :meth:`~cutq.worker.models.onnx_spec.ModelSpec.size_for`."""
        return self.spec.size_for(height, width, resize)

    def preprocess(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """See :meth:`~cutq.worker.models.onnx_spec.ModelSpec.preprocess`."""
        return self.spec.preprocess(image, size)

    def predict(self, batch: np.ndarray, urgent: bool = False) -> np.ndarray:
        """N×3×h×w → N×1×h×w in [0, 1] (sigmoid and min-max as the spec says)."""
        if self._graph is None:
            raise RuntimeError("CustomOnnx.predict called before setup()")
        size = (batch.shape[2], batch.shape[3])
        if self.batch_of_one and len(batch) > 1:
            return np.concatenate(
                [self.predict(batch[i : i + 1], urgent) for i in range(len(batch))]
            )
        feed = self.spec.to_layout(batch).astype(self.input_dtype, copy=False)
        output = self._graph.run(feed, urgent)
        return self.spec.to_saliency(output, len(batch), size)


class NamedGraph(onnx_engine.Graph):
    """:class:`~cutq.worker.models.onnx_engine.Graph` for a graph whose input and output
    names are its own (set after the spec is checked against it).

    ``binding`` (default: on CUDA's execution provider) runs through onnxruntime's I/O
    binding: the input is bound from host memory, only the chosen output is bound, on the
    device the session runs on, and copied back once; the other outputs of a multi-output
    export (u2net's side maps) stay on the GPU. ``tools/gpu_check.py`` times it against a
    plain ``run`` on the GPU."""

    names: tuple[str, str] = ("", "")

    def __init__(self, *args: Any, binding: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.binding = self.placement.cuda if binding is None else binding

    def run(self, batch: np.ndarray, urgent: bool = False) -> np.ndarray:
        input_name, output_name = self.names
        with self.busy.enter(urgent) as wide:
            session = self.wide if wide else self.narrow
            if not self.binding:
                return session.run([output_name], {input_name: batch})[0]  # type: ignore[no-any-return]
            bound = session.io_binding()
            bound.bind_cpu_input(input_name, batch)
            where = "cuda" if self.placement.cuda else "cpu"
            bound.bind_output(output_name, where, self.placement.device_id)
            session.run_with_iobinding(bound)
            return bound.copy_outputs_to_cpu()[0]  # type: ignore[no-any-return]
