"""``spacy-ladtl.BiLSTMEncoder.v2``: the word-level BiLSTM on packed sequences.

``BiLSTMEncoder.v1`` uses thinc's ``PyTorchLSTM``, which runs ``torch.nn.LSTM``
on the zero-padded batch: the backward direction of every shorter sentence
first reads the padding, so a sentence's vectors depend on the longest sentence
in its batch (on ``nlp.pipe``'s batch size and on the other docs), and the LSTM
pays for ``batch x longest`` positions. v2 packs the sentences
(``pack_padded_sequence``): each sentence's vectors are those it gets alone,
whatever the batch, and only real tokens are computed. Same parameters and
width as v1; a model trained with v1 should be retrained (or re-evaluated)
with v2, since its backward states were learned next to padding.
"""
from typing import Any, Callable, List, Tuple, cast

import torch
from thinc.api import ArgsKwargs, Model, PyTorchWrapper, torch2xp, xp2torch
from thinc.types import Floats2d


class PackedLSTM(torch.nn.Module):
    """``torch.nn.LSTM`` over right-padded (B, T, nI) input with per-row lengths."""

    def __init__(self, n_in: int, n_hidden: int, depth: int = 1, bi: bool = True) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(n_in, n_hidden, depth, bidirectional=bi, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        padded, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return padded


def _convert_inputs(model: Model, X: List[Floats2d], is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    ops = model.ops
    lengths = [len(x) for x in X]
    shim = model.shims[0]
    padded = xp2torch(ops.pad(X), requires_grad=is_train, device=shim.device)
    lens = torch.tensor(lengths, dtype=torch.int64)

    def backprop(d_inputs: ArgsKwargs) -> List[Floats2d]:
        return ops.unpad(ops.asarray3f(torch2xp(d_inputs.args[0])), lengths)

    return ArgsKwargs(args=(padded, lens), kwargs={}), backprop


def _convert_outputs(model: Model, inputs_outputs: Tuple[Any, torch.Tensor], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    X, Y_torch = inputs_outputs
    ops = model.ops
    lengths = [len(x) for x in X]
    Y = ops.unpad(ops.asarray3f(torch2xp(Y_torch)), lengths)
    shim = model.shims[0]

    def backprop(dY: List[Floats2d]) -> ArgsKwargs:
        d_padded = xp2torch(ops.pad(dY, round_to=1), device=shim.device)
        if d_padded.shape[1] < Y_torch.shape[1]:  # ops.pad pads to the longest *gradient*
            d_padded = torch.nn.functional.pad(d_padded, (0, 0, 0, Y_torch.shape[1] - d_padded.shape[1]))
        return ArgsKwargs(args=(Y_torch,), kwargs={"grad_tensors": d_padded})

    return Y, backprop


def PackedBiLSTM(n_out: int, n_in: int, depth: int = 1) -> Model[List[Floats2d], List[Floats2d]]:
    """A bidirectional LSTM layer (``n_out`` = 2 x hidden) over a list of (len_i, n_in) arrays."""
    if n_out % 2:
        raise ValueError(f"PackedBiLSTM needs an even width, got {n_out}.")
    wrapped = PyTorchWrapper(
        PackedLSTM(n_in, n_out // 2, depth, bi=True),
        convert_inputs=_convert_inputs,
        convert_outputs=_convert_outputs,
    )
    wrapped.set_dim("nO", n_out)
    wrapped.set_dim("nI", n_in)
    return cast(Model[List[Floats2d], List[Floats2d]], _skip_empty(wrapped))


def _skip_empty(layer: Model) -> Model:
    """Pass empty batches through without calling torch (pack needs >= 1 sequence)."""

    def forward(model: Model, X: List[Floats2d], is_train: bool) -> Tuple[List[Floats2d], Callable]:
        inner = model.layers[0]
        if not X:
            return [], lambda dY: []
        return inner(X, is_train)

    return Model("packed_bilstm", forward, layers=[layer], dims={"nO": layer.get_dim("nO"), "nI": layer.get_dim("nI")})
