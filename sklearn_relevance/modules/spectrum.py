"""IsotopeNet-like residual 1D CNN for spectra (mass spectra, signals).

Modelled on IsotopeNet (Behrmann et al. 2018, "Deep learning for tumor
classification in imaging mass spectrometry", Bioinformatics 34(7)):
residual blocks of 3x1 convolutions with BatchNorm that downsample the
spectrum by strides 5 and 3, a locally connected layer (weights not shared
along the m/z axis, so a position keeps its meaning), dropout 0.3 and a
dense output. Every layer is a standard torch layer or a small module of
this file, so gradients of any order (relevance penalties) and LRP work:

- every convolution is followed directly by its BatchNorm inside an
  ``nn.Sequential`` (LRP's canonizer merges the pair);
- the residual sum is the explicit :class:`Add` child of each block (LRP's
  rule for sums splits relevance between the branches);
- the locally connected layer is a grouped 1x1 ``nn.Conv1d`` with one group
  per position (:class:`LocallyConnected1d`), so LRP's convolution rules
  apply to it unchanged.
"""

from __future__ import annotations

from torch import nn

from ._utils import as_shape, mlp_layers, output_numel

__all__ = ["Add", "LocallyConnected1d", "ResidualBlock1d", "SpectrumCNN"]


class Add(nn.Module):
    """Elementwise sum of two tensors, as a module LRP rules can attach to.

    It declares ``lrp_role = "sum"``, by which LRP's composites give it
    the proportional (Norm) rule without knowing this class.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.modules.spectrum import Add
    >>> Add()(torch.ones(2), torch.ones(2))
    tensor([2., 2.])
    """

    lrp_role = "sum"

    def forward(self, a, b):
        return a + b


class ResidualBlock1d(nn.Module):
    """Two 3-wide convolutions with BatchNorm and a (projected) skip connection.

    ``forward`` returns ``relu(main(x) + shortcut(x))``; the addition is an
    explicit child (``self.add``) so LRP can split relevance between the two
    branches in proportion to their contributions. The first convolution
    (and the 1x1 projection of the shortcut) carry the block's stride.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    stride : int, default=1

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.modules.spectrum import ResidualBlock1d
    >>> ResidualBlock1d(1, 8, stride=5)(torch.zeros(2, 1, 100)).shape
    torch.Size([2, 8, 20])
    """

    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1),
            nn.BatchNorm1d(c_out),
            nn.ReLU(),
            nn.Conv1d(c_out, c_out, 3, padding=1),
            nn.BatchNorm1d(c_out),
        )
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride), nn.BatchNorm1d(c_out)
            )
        else:
            self.shortcut = nn.Identity()
        self.add = Add()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.add(self.main(x), self.shortcut(x)))


class LocallyConnected1d(nn.Module):
    """A 1x1 convolution whose weights differ at every position.

    Maps ``(n, c_in, L)`` to ``(n, c_out, L)`` with a separate
    ``c_in -> c_out`` linear map at each of the ``L`` positions. It is
    computed as one grouped ``nn.Conv1d(L * c_in, L * c_out, 1, groups=L)``
    on the positions moved into channels, so it is fast, differentiable to
    any order, and handled by LRP's convolution rules.

    Parameters
    ----------
    c_in, c_out : int
        Channels in and out.
    length : int
        Number of positions ``L`` (fixed: the weights are per position).

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.modules.spectrum import LocallyConnected1d
    >>> LocallyConnected1d(8, 2, length=10)(torch.zeros(3, 8, 10)).shape
    torch.Size([3, 2, 10])
    """

    def __init__(self, c_in, c_out, length):
        super().__init__()
        self.c_in, self.c_out, self.length = int(c_in), int(c_out), int(length)
        self.conv = nn.Conv1d(self.length * self.c_in, self.length * self.c_out, 1,
                              groups=self.length)

    def forward(self, x):
        n = x.shape[0]
        if x.shape[1:] != (self.c_in, self.length):
            raise ValueError(
                f"LocallyConnected1d expects inputs of shape (n, {self.c_in}, "
                f"{self.length}). Got {tuple(x.shape)} instead."
            )
        z = x.transpose(1, 2).reshape(n, self.length * self.c_in, 1)
        z = self.conv(z)
        return z.reshape(n, self.length, self.c_out).transpose(1, 2)


class SpectrumCNN(nn.Module):
    """IsotopeNet-like residual 1D CNN for spectra, returning logits.

    ``stem -> residual blocks -> locally connected layer -> dropout -> dense``:

    - ``stem``: ``Conv1d(3) -> BatchNorm -> ReLU``;
    - ``features``: the stem and one :class:`ResidualBlock1d` per entry of
      ``channels`` / ``strides`` (3x1 convolutions with BatchNorm; strides 5
      and 3 shrink a 1,000-bin spectrum to 67 positions);
    - ``local``: a :class:`LocallyConnected1d` to ``local_channels`` channels
      and a ReLU (skipped when ``local_channels`` is None; no BatchNorm, which
      could not be merged into the per-position weights for LRP);
    - ``classifier``: ``Flatten, Dropout(dropout)``, an optional hidden dense
      layer, and the dense output.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, length)`` of one spectrum, or ``(length,)``; the network
        then accepts ``(n, length)`` and ``(n, 1, length)`` batches.
    n_outputs : int
        Number of outputs (classes, or regression targets).
    channels : tuple of int, default=(16, 32)
        Filters of the residual blocks.
    strides : tuple of int, default=(5, 3)
        Stride of each block (same length as ``channels``).
    stem_channels : int, default=8
        Filters of the first convolution.
    local_channels : int or None, default=4
        Output channels of the locally connected layer.
    hidden_units : int or None, default=None
        Width of a hidden dense layer before the output (None: IsotopeNet's
        direct dense output).
    dropout : float, default=0.3

    Attributes
    ----------
    features : nn.Sequential
        Stem and residual blocks (``features[-1]`` is a Grad-CAM layer).
    local : nn.Sequential
        ``LocallyConnected1d, ReLU`` (empty without it).
    classifier : nn.Sequential

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.modules import SpectrumCNN
    >>> net = SpectrumCNN((1, 300), 2)
    >>> net(torch.zeros(4, 1, 300)).shape, net(torch.zeros(4, 300)).shape
    (torch.Size([4, 2]), torch.Size([4, 2]))
    """

    def __init__(self, input_shape, n_outputs, *, channels=(16, 32), strides=(5, 3),
                 stem_channels=8, local_channels=4, hidden_units=None, dropout=0.3):
        super().__init__()
        given = as_shape(input_shape)
        shape = (1, given[0]) if len(given) == 1 else given
        if len(shape) != 2:
            raise ValueError(
                "The 'input_shape' parameter of SpectrumCNN must be (channels, length) "
                f"or (length,). Got {shape} instead."
            )
        channels, strides = tuple(channels), tuple(strides)
        if len(channels) != len(strides) or not channels:
            raise ValueError(
                "The 'channels' and 'strides' parameters of SpectrumCNN must have the "
                f"same, non-zero length. Got {channels} and {strides} instead."
            )
        if not 0 <= dropout < 1:
            raise ValueError(
                "The 'dropout' parameter of SpectrumCNN must be in [0, 1). Got "
                f"{dropout!r} instead."
            )
        self.input_shape = given  # the per-sample shape callers pass, (L,) or (c, L)
        self.n_outputs = int(n_outputs)
        stem = nn.Sequential(
            nn.Conv1d(shape[0], int(stem_channels), 3, padding=1),
            nn.BatchNorm1d(int(stem_channels)),
            nn.ReLU(),
        )
        blocks, c_in = [stem], int(stem_channels)
        for c_out, stride in zip(channels, strides):
            blocks.append(ResidualBlock1d(c_in, int(c_out), stride=int(stride)))
            c_in = int(c_out)
        self.features = nn.Sequential(*blocks)
        length = output_numel(self.features, shape) // c_in
        if local_channels:
            self.local = nn.Sequential(
                LocallyConnected1d(c_in, int(local_channels), length),
                nn.ReLU(),
            )
            n_flat = int(local_channels) * length
        else:
            self.local = nn.Sequential()
            n_flat = c_in * length
        head = [nn.Flatten()]
        if dropout:
            head.append(nn.Dropout(dropout))
        hidden = (int(hidden_units),) if hidden_units else ()
        head += mlp_layers(n_flat, hidden, self.n_outputs, dropout)
        self.classifier = nn.Sequential(*head)

    def forward(self, X):
        if X.ndim == 2:
            X = X[:, None, :]
        return self.classifier(self.local(self.features(X)))
