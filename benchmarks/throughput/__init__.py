"""Throughput suite: how fast each piece of the reproduction runs, and how close to the chip.

``python -m benchmarks.throughput [--out-dir results] [--data cifar10_jpeg.tar.xz]``

For each DCGAN architecture, at batch 128 and at a large batch:

* ``train_img_per_s``: the fast training step, set up by :class:`dcgan_ref.step.GanSetup`
  exactly as training sets it up (the ``paper`` preset's settings: device-resident uint8
  data drawn by ``randperm``, bf16 autocast, channels_last, fused capturable Adam, the whole
  D+G step one CUDA graph, no host sync per step);
* ``eager_train_img_per_s``: the same step without the graph;
* ``naive_train_img_per_s`` (batch 128 only): the usual tutorial loop, for the ratio
  ``train_speedup_vs_naive_x``: ``torchvision.datasets.ImageFolder`` over JPEG files with
  per-sample transforms, a ``DataLoader``, eager fp32, unfused Adam, and a ``.item()`` per step;
* ``sample_img_per_s`` (G forward, eval mode, bf16 autocast on a GPU) and
  ``extract_img_per_s`` (D's pooled features, fp32 as the probes extract them);

plus the K-means baseline's encoding (``extract_img_per_s`` of ``kmeans-1600``) and the
L2-SVM solve at 50,000 x 28,672 (``svm_solve_s``), with scikit-learn's ``LinearSVC`` on a
10,000-row slice of the same features (``sklearn_svm_solve_s``, ``svm_speedup_vs_sklearn_x``).

Each rate carries ``<name>_tflops`` (FLOPs counted once with ``torch.utils.flop_counter``:
matmuls and convolutions, forward and backward) and ``<name>_mfu_pct``, its share of the
device's dense bf16 peak (absent for a device missing from ``timing.PEAK_BF16_TFLOPS``).  GPU
times come from CUDA events after warm-up; each figure is the median of several repeats,
``std`` their spread.  A ``torch.profiler`` summary of the fast step (top kernels, the
share of the step the GPU sits idle between kernels) is written beside the results.

On a GPU the full sizes run and ``results/throughput.{csv,md}`` are written; on a CPU small
sizes run as a correctness check, the table is printed and nothing is written.

Modules: :mod:`.timing` (timers, figures, FLOP counts, peaks, sizes), :mod:`.workloads`
(what is timed: the training loop, sampling, extraction, K-means, the SVM solve, the
profiler summary), :mod:`.naive` (the tutorial path), :mod:`.suite` (the whole run and
its results rows), :mod:`.cli` (``python -m benchmarks.throughput``).
"""
