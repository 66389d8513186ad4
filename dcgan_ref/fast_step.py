"""The whole DCGAN training step (D on real and fake, D's Adam step, G's forward through D,
G's Adam step) captured once as a CUDA graph and replayed each step.

At batch 128 an eager step is launch-bound (~100 small kernels per D pass, D runs three
times); replaying one graph removes the per-kernel launch cost.  The graph replays the
*same* kernels as :func:`dcgan_ref.step.make_step` on the same tensors, so losses and
weights match the eager step up to float rounding:

* **Inputs** are copied (``.copy_()``) into static buffers that the graph reads; batches
  and ``z`` are still drawn outside the graph, from the same generators as in eager mode.
* **Outputs**: the graph writes the two losses into one static tensor; each call returns a
  ``clone()`` of it, so a returned tensor stays valid after later replays.
* **Optimisers**: both ``Adam.step()`` calls are inside the graph.  That needs
  ``capturable=True`` (state ``step`` on the device, no host reads); ``fused=True`` may be
  combined with it (the fused kernel reads ``step`` from the device either way, so its
  numerics do not depend on ``capturable``).  Gradients are set to ``None`` inside the
  step, so ``backward`` allocates them from the graph's private pool; replays refill them.
* **Warm-up**: ``warmup_steps`` eager steps run on a side stream before capture (cuDNN /
  cuBLAS workspaces, autotuning, Adam's lazy state).  They would advance training, so the
  parameters, buffers and optimiser state are snapshot before and restored in place after
  (fresh Adam state is all zeros, so "restore" also covers an optimiser that had no state).
  The first call therefore computes exactly the first training step.

Capture happens on the first call, with the first real batch, so it always sees the
state that training continues from (e.g. after a checkpoint was loaded).  After capture,
nothing may *replace* the tensors the graph holds: ``opt.load_state_dict``, ``model.to``
to another device/dtype or ``model.load_state_dict(..., assign=True)`` need a new
graphed step.  In-place changes (``load_state_dict`` without ``assign``, batchnorm
statistics rewritten in place) are seen by the graph.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class GraphedStep:
    """An eager training step replayed from one CUDA graph; see the module docstring.

    ``eager`` is :func:`dcgan_ref.step.make_step` over ``modules`` and ``optimizers``
    (:meth:`dcgan_ref.step.GanSetup.make_step` builds this on CUDA).  Every call must pass
    tensors of the first call's shape, dtype and layout (training uses full batches only).
    On a device other than CUDA the same plumbing (static buffers, warm-up with state
    restore, a cloned output) runs with an eager call in place of the graph replay, so the
    bookkeeping can be tested without a GPU.
    """

    def __init__(self, eager: StepFn, modules: tuple[nn.Module, ...], optimizers: tuple[torch.optim.Optimizer, ...],
                 *, warmup_steps: int = 3) -> None:
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be >= 1 (cuDNN/cuBLAS set-up must not happen during capture), "
                             f"got {warmup_steps}")
        for opt in optimizers:
            _check_adam(opt)
        self.modules, self.optimizers = modules, optimizers
        self.device = next(modules[-1].parameters()).device
        self.use_graph = self.device.type == "cuda"
        self.warmup_steps = warmup_steps
        if self.use_graph:
            for opt in self.optimizers:
                make_capturable(opt)
        self._eager = eager
        self.graph: torch.cuda.CUDAGraph | None = None
        self._static_real: torch.Tensor | None = None
        self._static_z: torch.Tensor | None = None
        self._static_losses: torch.Tensor | None = None

    @property
    def captured(self) -> bool:
        return self._static_losses is not None

    def __call__(self, real_u8: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if not self.captured:
            self._capture(real_u8, z)
        else:
            self._load_inputs(real_u8, z)
        self._replay()
        assert self._static_losses is not None
        return self._static_losses.clone()  # the next replay overwrites the static output

    # ------------------------------------------------------------------ internals
    def _load_inputs(self, real_u8: torch.Tensor, z: torch.Tensor) -> None:
        assert self._static_real is not None and self._static_z is not None
        for name, new, static in (("real_u8", real_u8, self._static_real), ("z", z, self._static_z)):
            if new.shape != static.shape or new.dtype != static.dtype:
                raise ValueError(f"graphed step was captured for {name} {tuple(static.shape)} {static.dtype}; "
                                 f"got {tuple(new.shape)} {new.dtype}")
        self._static_real.copy_(real_u8)
        self._static_z.copy_(z)

    def _replay(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:  # non-CUDA stand-in for the replay: the same step on the same static buffers
            assert self._static_losses is not None and self._static_real is not None and self._static_z is not None
            self._static_losses.copy_(self._eager(self._static_real, self._static_z))

    def _capture(self, real_u8: torch.Tensor, z: torch.Tensor) -> None:
        # Static inputs keep the first batch's layout (channels_last stays channels_last).
        self._static_real = torch.empty_like(real_u8, memory_format=torch.preserve_format)
        self._static_z = torch.empty_like(z, memory_format=torch.preserve_format)
        self._static_real.copy_(real_u8)
        self._static_z.copy_(z)
        restore = snapshot_training_state(self.modules, self.optimizers)
        if not self.use_graph:
            for _ in range(self.warmup_steps):
                self._eager(self._static_real, self._static_z)
            restore()
            self._static_losses = torch.empty(2, device=self.device)
            return

        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup_steps):
                self._eager(self._static_real, self._static_z)
        torch.cuda.current_stream(self.device).wait_stream(side)

        graph = torch.cuda.CUDAGraph()
        # Same stream for warm-up and capture: handles and workspaces created in warm-up
        # are reused, nothing is created mid-capture.  Capture records kernels, runs none.
        with torch.cuda.graph(graph, stream=side):
            static_losses = self._eager(self._static_real, self._static_z)
        restore()  # on the current stream, so ordered before the first replay
        self.graph, self._static_losses = graph, static_losses


def make_capturable(opt: torch.optim.Optimizer) -> None:
    """Let ``opt.step()`` be captured: ``capturable=True`` and each ``step`` count a float32
    tensor on its parameter's device (Adam/AdamW only).

    Safe to call after ``load_state_dict`` (which takes its flags from the saved groups).
    """
    _check_adam(opt)
    for group in opt.param_groups:
        if group.get("differentiable"):
            raise ValueError("a differentiable Adam cannot be graph-captured")
        group["capturable"] = True
        for p in group["params"]:
            state = opt.state.get(p)
            if state and "step" in state:
                step = state["step"]
                if not isinstance(step, torch.Tensor):
                    step = torch.tensor(float(step))
                state["step"] = step.to(device=p.device, dtype=torch.float32)


def _check_adam(opt: torch.optim.Optimizer) -> None:
    # Capture needs Adam's capturable mode, and the warm-up restore relies on Adam's
    # initial state being zeros.  AdamW subclasses Adam.
    if not isinstance(opt, torch.optim.Adam):
        raise TypeError(f"the graphed step supports Adam/AdamW optimisers, got {type(opt).__name__}")


def snapshot_training_state(modules: tuple[nn.Module, ...],
                            optimizers: tuple[torch.optim.Optimizer, ...]) -> Callable[[], None]:
    """Copy parameters, buffers and Adam state now; the returned function writes them back
    *in place* (the same tensor objects, which a captured graph refers to).

    Optimiser state created after the snapshot (Adam's lazy first-step state) is reset to
    Adam's initial value, zeros (``step`` = 0, ``exp_avg`` = ``exp_avg_sq`` = 0).
    """
    with torch.no_grad():
        tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
        saved = [t.detach().clone() for t in tensors]
        opt_saved = [{p: {k: v.detach().clone() for k, v in s.items() if isinstance(v, torch.Tensor)}
                      for p, s in opt.state.items()} for opt in optimizers]

    def restore() -> None:
        with torch.no_grad():
            for t, s in zip(tensors, saved):
                t.copy_(s)
            for opt, before in zip(optimizers, opt_saved):
                for p, state in opt.state.items():
                    old = before.get(p)
                    for k, v in state.items():
                        if not isinstance(v, torch.Tensor):
                            continue
                        if old is None:
                            v.zero_()
                        elif k in old:
                            v.copy_(old[k])
                        else:
                            raise RuntimeError(f"optimiser state {k!r} appeared during warm-up; cannot restore it")

    return restore
