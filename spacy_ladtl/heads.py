"""Per-domain CRF heads in torch: an emission layer W and a CRF (A, start, end).

``DomainHeads`` holds one ``CRFHead`` per domain, in the order the model config
lists the domains; a sentence reaches the head of its domain by index.
"""
from io import BytesIO
from typing import Any, Dict, List, Sequence

import torch
from torch import nn

from .crf import CRF


class CRFHead(nn.Module):
    """Emission layer plus CRF for one domain's tag set."""

    def __init__(self, n_in: int, tags: Sequence[str], scheme: str) -> None:
        super().__init__()
        self.emission = nn.Linear(n_in, len(tags))
        self.crf = CRF(tags, scheme)

    def nll(self, hidden: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sentence negative log-likelihood, (B,)."""
        return self.crf.nll(self.emission(hidden), tags, mask)

    def decode(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Best tag ids, (B, T)."""
        paths, _ = self.crf.decode(self.emission(hidden), mask)
        return paths


class DomainHeads(nn.Module):
    """One CRF head per domain over a shared hidden width ``n_in``."""

    def __init__(self, n_in: int, domains: Sequence[str], tag_sets: Dict[str, List[str]], scheme: str) -> None:
        super().__init__()
        self.config: Dict[str, Any] = {
            "n_in": n_in,
            "domains": list(domains),
            "tag_sets": {d: list(tag_sets[d]) for d in domains},
            "scheme": scheme,
        }
        self.heads = nn.ModuleList([CRFHead(n_in, tag_sets[d], scheme) for d in domains])

    @property
    def domains(self) -> List[str]:
        return self.config["domains"]

    def decode(self, hidden: torch.Tensor, mask: torch.Tensor, domain_ids: torch.Tensor) -> torch.Tensor:
        """Decode every sentence with its domain's head, (B, T)."""
        present = domain_ids.unique().tolist()
        if len(present) == 1:  # the usual case at inference: no (B, T, nI) gather copy
            return self.heads[present[0]].decode(hidden, mask)
        paths = torch.zeros(mask.shape, dtype=torch.long, device=hidden.device)
        for index in present:
            rows = (domain_ids == index).nonzero(as_tuple=True)[0]
            paths[rows] = self.heads[index].decode(hidden[rows], mask[rows])
        return paths


def serialize_heads(module: DomainHeads) -> bytes:
    """Bytes holding both the shapes (config) and the weights of ``module``."""
    buffer = BytesIO()
    torch.save({"config": module.config, "state": module.state_dict()}, buffer)
    return buffer.getvalue()


def deserialize_heads(_old: Any, data: bytes, device: "torch.device") -> DomainHeads:
    """Rebuild a ``DomainHeads`` with the saved shapes, then load its weights."""
    saved = torch.load(BytesIO(data), map_location=device, weights_only=True)
    module = DomainHeads(**saved["config"])
    module.load_state_dict(saved["state"])
    return module.to(device)
