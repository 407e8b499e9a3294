"""The thinc layer that joins the shared encoder to the per-domain CRF heads.

Forward: docs -> shared ``tok2vec`` -> padded hidden vectors (one torch tensor)
plus each doc's domain index. The torch ``DomainHeads`` live in a PyTorchShim so
thinc's optimizer, serialization and device handling cover them. Backprop takes
the scalar torch loss, runs one backward pass through heads and transfer terms,
and hands the hidden-vector gradient back to ``tok2vec``.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from spacy.tokens import Doc
from thinc.api import Model, PyTorchShim, get_width, torch2xp, xp2torch
from thinc.util import get_torch_default_device

from .domains import get_domain
from .heads import DomainHeads, deserialize_heads, serialize_heads


@dataclass
class EncodedBatch:
    """Encoder output for a batch of non-empty docs, ready for the CRF heads."""

    hidden: torch.Tensor  # (B, T, nI) shared encoder vectors
    mask: torch.Tensor  # (B, T) True on real tokens
    domain_ids: torch.Tensor  # (B,) index into the model's domains
    heads: DomainHeads


def domain_heads_of(model: Model) -> DomainHeads:
    """The torch ``DomainHeads`` held by a LaDTL tagger model."""
    return model.shims[0]._model


def domain_indices(docs: Sequence[Doc], domains: Sequence[str], default_domain: Optional[str]) -> List[int]:
    """Each doc's index in ``domains``: its marker, else ``default_domain``."""
    index = {name: i for i, name in enumerate(domains)}
    ids = []
    for doc in docs:
        name = get_domain(doc) or default_domain
        if name not in index:
            raise ValueError(
                f"Unknown domain {name!r} on doc {doc.text[:40]!r}. Known domains: "
                f"{list(domains)}. Mark docs with doc._.ladtl_domain or set "
                f"default_domain in [components.ladtl_ner]."
            )
        ids.append(index[name])
    return ids


def build_domain_heads_layer(
    tok2vec: Model[List[Doc], List], domains: Sequence[str], tag_scheme: str
) -> Model[List[Doc], EncodedBatch]:
    """The ``ladtl_tagger`` node: shared ``tok2vec`` plus a shim with the heads."""
    placeholder = DomainHeads(1, [], {}, tag_scheme)
    shim = PyTorchShim(placeholder, serialize_model=serialize_heads, deserialize_model=deserialize_heads)
    return Model(
        "ladtl_tagger",
        forward,
        init=init,
        layers=[tok2vec],
        refs={"tok2vec": tok2vec},
        shims=[shim],
        dims={"nI": None},
        attrs={"domains": list(domains), "tag_scheme": tag_scheme, "tag_sets": {}, "default_domain": None},
    )


def init(model: Model, X: Optional[List[Doc]] = None, Y: Optional[object] = None) -> None:
    """Initialize ``tok2vec``, infer the hidden width, build one head per domain."""
    tok2vec = model.get_ref("tok2vec")
    tok2vec.initialize(X=X)
    if not model.has_dim("nI"):
        if tok2vec.has_dim("nO"):
            model.set_dim("nI", tok2vec.get_dim("nO"))
        elif X is not None:
            model.set_dim("nI", get_width(tok2vec.predict(X[:8])[0]))
        else:
            raise ValueError("Cannot infer the encoder width: pass sample docs to initialize.")
    domains = model.attrs["domains"]
    missing = [d for d in domains if not model.attrs["tag_sets"].get(d)]
    if missing:
        raise ValueError(f"No tag set for domain(s) {missing}: initialize the ladtl_ner component with labels for every domain.")
    shim = model.shims[0]
    heads = DomainHeads(model.get_dim("nI"), domains, model.attrs["tag_sets"], model.attrs["tag_scheme"])
    shim._model = heads.to(get_torch_default_device())


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[EncodedBatch, Callable]:
    tok2vec = model.get_ref("tok2vec")
    hiddens, backprop_tok2vec = tok2vec(docs, is_train)
    lengths = [len(h) for h in hiddens]
    padded = model.ops.pad(hiddens)
    device = get_torch_default_device()
    hidden = xp2torch(padded, requires_grad=is_train, device=device)
    positions = torch.arange(hidden.shape[1], device=device)
    mask = positions.unsqueeze(0) < torch.tensor(lengths, device=device).unsqueeze(1)
    ids = domain_indices(docs, model.attrs["domains"], model.attrs["default_domain"])
    batch = EncodedBatch(hidden, mask, torch.tensor(ids, dtype=torch.long, device=device), domain_heads_of(model))

    def backprop(loss: torch.Tensor) -> List[Doc]:
        loss.backward()
        if hidden.grad is None:
            d_padded = model.ops.alloc3f(*padded.shape)
        else:
            d_padded = model.ops.asarray3f(torch2xp(hidden.grad.contiguous()))
        backprop_tok2vec(model.ops.unpad(d_padded, lengths))
        return []

    return batch, backprop
