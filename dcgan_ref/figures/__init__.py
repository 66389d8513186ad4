"""The paper's figures, each reproducible from a generator/discriminator pair.

One module per experiment (docs/PAPER.md, Sections 4.1, 6 and 7): ``latent_walk`` (Fig. 4),
``arithmetic`` (Fig. 7), ``guided_backprop`` (Fig. 5), ``memorisation`` (Section 4.1),
``dedup`` (Section 4.1.1), ``collapse`` (Section 7).  Each has functions that compute the
figure's numbers (tested on tiny models) and a ``make(inputs, out_dir)`` that draws
``<name>.png``, writes ``<name>.json`` and returns those numbers.  ``python -m
dcgan_ref.figures`` (``nox -s figures``) runs them all.
"""
