"""La-MMD's per-label memory (spacy_ladtl/memory.py)."""
import pytest
import torch

from spacy_ladtl.memory import LabelMemory


def test_push_keeps_the_newest_vectors_per_label():
    memory = LabelMemory(2)
    memory.push(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([0, 0, 1]))
    memory.push(torch.tensor([[4.0], [5.0], [6.0]]), torch.tensor([0, -1, 1]))
    assert len(memory) == 4
    by_label = {int(lab): [] for lab in memory.labels}
    for vec, lab in zip(memory.vectors[:, 0].tolist(), memory.labels.tolist()):
        by_label[lab].append(vec)
    assert by_label == {0: [2.0, 4.0], 1: [3.0, 6.0]}  # 1.0 dropped (oldest label-0 vector), -1 never kept


def test_with_memory_appends_only_kept_labels_detached():
    memory = LabelMemory(4)
    memory.push(torch.tensor([[1.0], [2.0]]), torch.tensor([0, 1]))
    h = torch.tensor([[9.0]], requires_grad=True)
    y = torch.tensor([1])
    keep = torch.tensor([False, True])
    h_all, y_all = memory.with_memory(h, y, keep)
    assert h_all[:, 0].tolist() == [9.0, 2.0] and y_all.tolist() == [1, 1]
    h_all.sum().backward()
    assert h.grad is not None and memory.vectors.grad is None and not memory.vectors.requires_grad


def test_size_zero_remembers_nothing_and_negative_size_is_an_error():
    memory = LabelMemory(0)
    memory.push(torch.ones(3, 2), torch.zeros(3, dtype=torch.long))
    assert len(memory) == 0
    h, y = torch.ones(1, 2), torch.zeros(1, dtype=torch.long)
    assert memory.with_memory(h, y, torch.tensor([True]))[0] is h
    with pytest.raises(ValueError, match="mmd_memory"):
        LabelMemory(-1)
