"""A per-label memory of recent encoder vectors, to widen La-MMD's samples.

With few target sentences per batch most shared labels have no or one target
token in a batch, so La-MMD skips them (``mmd_min_tokens``). The memory keeps
the last ``size`` vectors of every shared label of one domain, detached, from
earlier batches; La-MMD then compares the current tokens together with the
remembered ones. Gradients reach only the current batch's vectors.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .losses import rank_within_label


class LabelMemory:
    """The last ``size`` detached vectors of each shared label of one domain."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"mmd_memory = {size} must be >= 0 (0 = no memory).")
        self.size = int(size)
        self.vectors: Optional[Tensor] = None
        self.labels: Optional[Tensor] = None

    def __len__(self) -> int:
        return 0 if self.labels is None else int(self.labels.shape[0])

    def with_memory(self, h: Tensor, y: Tensor, keep: Tensor) -> Tuple[Tensor, Tensor]:
        """``(h, y)`` followed by the remembered vectors whose label is set in ``keep`` (bool, n_labels).

        Remembered vectors of other labels are left out: with no current token
        of their label on either side they could carry no gradient.
        """
        if self.vectors is None or self.labels is None:
            return h, y
        chosen = keep[self.labels]
        return torch.cat([h, self.vectors[chosen].to(h.dtype)], 0), torch.cat([y.long(), self.labels[chosen]], 0)

    def push(self, h: Tensor, y: Tensor) -> None:
        """Remember the vectors of ``h`` with a label ``>= 0`` in ``y``; keep the newest ``size`` per label."""
        if self.size == 0:
            return
        valid = y >= 0
        new_h, new_y = h[valid].detach(), y[valid].long()
        if self.vectors is not None and self.labels is not None:
            new_h = torch.cat([self.vectors, new_h], 0)
            new_y = torch.cat([self.labels, new_y], 0)
        self.vectors, self.labels = _newest_per_label(new_h, new_y, self.size)


#: La-MMD's memories of one domain pair (a, b): one LabelMemory per side.
PairMemory = Tuple[LabelMemory, LabelMemory]


def widen_and_remember(
    memory: PairMemory, h_a: Tensor, y_a: Tensor, h_b: Tensor, y_b: Tensor, n_labels: int
) -> Tuple[Tuple[Tensor, Tensor], Tuple[Tensor, Tensor]]:
    """Both sides' samples widened by the remembered vectors of the labels in this batch; then remember it."""
    present = torch.zeros(n_labels, dtype=torch.bool, device=y_a.device)
    present[y_a[y_a >= 0]] = True
    present[y_b[y_b >= 0]] = True
    sample_a = memory[0].with_memory(h_a, y_a, present)
    sample_b = memory[1].with_memory(h_b, y_b, present)
    memory[0].push(h_a, y_a)
    memory[1].push(h_b, y_b)
    return sample_a, sample_b


def _newest_per_label(h: Tensor, y: Tensor, size: int) -> Tuple[Tensor, Tensor]:
    """The last ``size`` rows of each label (rows are oldest first), in their original order."""
    n = y.shape[0]
    if n == 0:
        return h, y
    newest_first = torch.arange(n - 1, -1, -1, device=y.device)
    lab, order = torch.sort(y[newest_first], stable=True)
    rows = newest_first[order]
    rank = rank_within_label(lab, int(lab[-1]) + 1)
    kept = torch.sort(rows[rank < size]).values
    return h[kept], y[kept]
