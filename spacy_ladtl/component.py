"""The ``ladtl_ner`` component: La-DTL named-entity recognition across domains.

Laid out like spaCy's ``spacy/pipeline/spancat.py``: the default model config,
the factory, then the ``TrainablePipe`` subclass.
"""
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.training.iob_utils import biluo_tags_to_spans
from spacy.util import filter_spans
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate

from .domains import example_domain
from .layers import EncodedBatch, domain_heads_of
from .memory import LabelMemory, PairMemory
from .objective import TagMatch, TransferSettings, gold_tag_ids, ladtl_loss, match_domains
from .scorer import ladtl_ner_score
from .tags import make_tags, scheme_to_biluo

default_model_config = """
[model]
@architectures = "spacy-ladtl.LaDTLTagger.v1"
domains = ["source", "target"]
tag_scheme = "BILUO"

[model.tok2vec]
@architectures = "spacy.Tok2Vec.v2"

[model.tok2vec.embed]
@architectures = "spacy.CharacterEmbed.v2"
width = 128
rows = 7000
nM = 32
nC = 8
include_static_vectors = false

[model.tok2vec.encode]
@architectures = "spacy-ladtl.BiLSTMEncoder.v1"
width = 128
hidden_size = 200
depth = 1
dropout = 0.5
"""
DEFAULT_LADTL_MODEL = Config().from_str(default_model_config)["model"]


@Language.factory(
    "ladtl_ner",
    assigns=["doc.ents"],
    default_config={
        "model": DEFAULT_LADTL_MODEL,
        "target_domain": "target",
        "default_domain": None,
        "alpha": 0.02,
        "beta": 0.03,
        "epsilon": 0.3,
        "mmd": "label_aware",
        "mmd_include_o": False,
        "mmd_bandwidth": "pooled",
        "mmd_labels": "tag",
        "mmd_max_tokens": 64,
        "mmd_min_tokens": 2,
        "mmd_memory": 0,
        "label_map": {},
        "transfer_pairs": "with_target",
        "spans_key": None,
        "scorer": {"@scorers": "spacy-ladtl.ner_scorer.v1"},
    },
    default_score_weights={
        "ents_target_f": 1.0,
        "ents_target_p": 0.0,
        "ents_target_r": 0.0,
        "ents_f": 0.0,
        "ents_p": None,
        "ents_r": None,
        "ents_per_type": None,
    },
)
def make_ladtl_ner(
    nlp: Language,
    name: str,
    model: Model[List[Doc], EncodedBatch],
    target_domain: str,
    default_domain: Optional[str],
    alpha: float,
    beta: float,
    epsilon: float,
    mmd: str,
    mmd_include_o: bool,
    mmd_bandwidth: str,
    mmd_labels: str,
    mmd_max_tokens: int,
    mmd_min_tokens: int,
    mmd_memory: int,
    label_map: Dict[str, str],
    transfer_pairs: str,
    spans_key: Optional[str],
    scorer: Optional[Callable],
) -> "LaDTLEntityRecognizer":
    """Create a ``ladtl_ner`` component.

    model: a ``spacy-ladtl.LaDTLTagger.v1`` (shared encoder + one CRF per domain).
    target_domain: the domain La-DTL is trained for; scored as ``ents_target_f``.
    default_domain: the head used for docs without a domain marker (default: target).
    alpha, beta: weights of La-MMD and CRF-L2 (paper: 0.02, 0.03).
    epsilon: CRF loss weight of the source domain(s); the target gets 1 - epsilon.
    mmd: "label_aware" (La-MMD), "marginal" (plain MMD), "label_aware+marginal" (their sum)
        or "none".
    mmd_include_o: also align the O tag's vectors (the paper does; default off).
    mmd_bandwidth: La-MMD's Gaussian bandwidth: "pooled" (one median over all labels'
        vectors) or "per_label" (each label's own median).
    mmd_labels: what La-MMD aligns as one label: "tag" (B-PER, I-PER, ... each on its
        own) or "type" (all tags of PER together: more tokens per label and batch).
    mmd_max_tokens: cap on tokens per label and domain in La-MMD (per domain for marginal).
    mmd_min_tokens: labels with fewer tokens on a side are skipped in the batch.
    mmd_memory: La-MMD also compares up to this many remembered (detached) vectors per
        label and domain from earlier batches (0 = off).
    label_map: rename entity types before matching across domains, e.g. {"person": "PER"};
        "" keeps a type out of the transfer terms, e.g. {"location": ""}.
    transfer_pairs: with three or more domains, which pairs La-MMD and CRF-L2 tie:
        "with_target" (each source with the target; default) or "all" (sources too).
    spans_key: also write the entities to ``doc.spans[spans_key]``.
    """
    return LaDTLEntityRecognizer(
        nlp.vocab,
        model,
        name,
        target_domain=target_domain,
        default_domain=default_domain,
        alpha=alpha,
        beta=beta,
        epsilon=epsilon,
        mmd=mmd,
        mmd_include_o=mmd_include_o,
        mmd_bandwidth=mmd_bandwidth,
        mmd_labels=mmd_labels,
        mmd_max_tokens=mmd_max_tokens,
        mmd_min_tokens=mmd_min_tokens,
        mmd_memory=mmd_memory,
        label_map=label_map,
        transfer_pairs=transfer_pairs,
        spans_key=spans_key,
        scorer=scorer,
    )


class LaDTLEntityRecognizer(TrainablePipe):
    """Named-entity recognizer with a shared encoder and one CRF head per domain."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], EncodedBatch],
        name: str = "ladtl_ner",
        *,
        target_domain: str = "target",
        default_domain: Optional[str] = None,
        alpha: float = 0.02,
        beta: float = 0.03,
        epsilon: float = 0.3,
        mmd: str = "label_aware",
        mmd_include_o: bool = False,
        mmd_bandwidth: str = "pooled",
        mmd_labels: str = "tag",
        mmd_max_tokens: int = 64,
        mmd_min_tokens: int = 2,
        mmd_memory: int = 0,
        label_map: Optional[Dict[str, str]] = None,
        transfer_pairs: str = "with_target",
        spans_key: Optional[str] = None,
        scorer: Optional[Callable] = ladtl_ner_score,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        domains = self.domains
        for setting, value in (("target_domain", target_domain), ("default_domain", default_domain)):
            if value is not None and value not in domains:
                raise ValueError(f"{setting} = {value!r} in [components.{name}] is not one of the model's domains {domains}.")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon = {epsilon} in [components.{name}] must lie in [0, 1].")
        # Not in cfg: the config (e.g. ``spacy.load(..., config=...)``) decides it, not the saved state.
        self._default_domain = default_domain or target_domain
        self.cfg: Dict[str, Any] = {
            "labels": {},
            "target_domain": target_domain,
            "alpha": alpha,
            "beta": beta,
            "epsilon": epsilon,
            "mmd": mmd,
            "mmd_include_o": mmd_include_o,
            "mmd_bandwidth": mmd_bandwidth,
            "mmd_labels": mmd_labels,
            "mmd_max_tokens": mmd_max_tokens,
            "mmd_min_tokens": mmd_min_tokens,
            "mmd_memory": mmd_memory,
            "label_map": dict(label_map or {}),
            "transfer_pairs": transfer_pairs,
            "spans_key": spans_key,
        }
        self.settings = self._transfer_settings()
        self._matches: Optional[Dict[Tuple[int, int], TagMatch]] = None
        self._memories: Optional[Dict[Tuple[int, int], PairMemory]] = None
        self._tag_sets: Optional[Dict[str, List[str]]] = None
        self._sync_model_attrs()

    @property
    def domains(self) -> List[str]:
        """The domain names, in the order of the model's heads."""
        return list(self.model.attrs["domains"])

    @property
    def default_domain(self) -> str:
        """The head that decodes docs without ``doc._.ladtl_domain``."""
        return self._default_domain

    @default_domain.setter
    def default_domain(self, domain: str) -> None:
        if domain not in self.domains:
            raise ValueError(f"default_domain {domain!r} is not one of the model's domains {self.domains}.")
        self._default_domain = domain
        self._sync_model_attrs()

    @property
    def tag_scheme(self) -> str:
        return self.model.attrs["tag_scheme"]

    @property
    def labels(self) -> Tuple[str, ...]:
        """All entity labels of all domains."""
        return tuple(sorted({label for labels in self.cfg["labels"].values() for label in labels}))

    @property
    def label_data(self) -> Dict[str, List[str]]:
        """The entity labels of each domain (what ``spacy init labels`` saves)."""
        return {domain: list(labels) for domain, labels in self.cfg["labels"].items()}

    @property
    def tag_sets(self) -> Dict[str, List[str]]:
        """Each domain's CRF tags (cached; rebuilt when the labels change)."""
        if self._tag_sets is None:
            self._tag_sets = {d: make_tags(self.cfg["labels"].get(d, []), self.tag_scheme) for d in self.domains}
        return self._tag_sets

    def predict(self, docs: Iterable[Doc]) -> List[List[str]]:
        """Best tag sequence of each doc, decoded by its domain's CRF head."""
        docs = list(docs)
        tags: List[List[str]] = [[] for _ in docs]
        nonempty = [i for i, doc in enumerate(docs) if len(doc)]
        if not nonempty:
            return tags
        with torch.no_grad():
            batch = self.model.predict([docs[i] for i in nonempty])
            paths = batch.heads.decode(batch.hidden, batch.mask, batch.domain_ids).cpu().numpy()
        lengths = batch.mask.sum(1).tolist()
        tag_names = [numpy.asarray(self.tag_sets[d], dtype=object) for d in self.domains]
        for row, (i, domain_id) in enumerate(zip(nonempty, batch.domain_ids.tolist())):
            tags[i] = tag_names[domain_id][paths[row, : lengths[row]]].tolist()
        return tags

    def set_annotations(self, docs: Iterable[Doc], tags: List[List[str]]) -> None:
        """Write the decoded entities to ``doc.ents`` (and the span group, if set)."""
        for doc, doc_tags in zip(docs, tags):
            spans = biluo_tags_to_spans(doc, scheme_to_biluo(doc_tags, self.tag_scheme)) if doc_tags else []
            doc.set_ents(filter_spans(spans), default="outside")
            if self.cfg["spans_key"]:
                doc.spans[self.cfg["spans_key"]] = SpanGroup(doc, spans=list(doc.ents))

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """One step on a batch holding (ideally) every domain: one backward pass for all terms.

        ``losses`` gets the total under the component's name and each term under
        ``<name>_crf``, ``<name>_mmd`` and ``<name>_crf_l2``.
        """
        if losses is None:
            losses = {}
        for key in ("", "_crf", "_mmd", "_crf_l2"):
            losses.setdefault(self.name + key, 0.0)
        validate_examples(examples, "LaDTLEntityRecognizer.update")
        examples = [eg for eg in examples if len(eg.predicted)]
        if not examples:
            return losses
        set_dropout_rate(self.model, drop)
        batch, backprop = self.model.begin_update([eg.predicted for eg in examples])
        terms = self._loss_terms(examples, batch)
        backprop(terms["total"])
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += terms["total"].item()
        for key in ("crf", "mmd", "crf_l2"):
            losses[f"{self.name}_{key}"] += terms[key].item()
        return losses

    def get_loss(self, examples: Iterable[Example], batch: EncodedBatch) -> Tuple[float, torch.Tensor]:
        """The La-DTL loss of a batch, and the torch scalar that backprop differentiates."""
        terms = self._loss_terms(list(examples), batch)
        return terms["total"].item(), terms["total"]

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Dict[str, Sequence[str]]] = None,
    ) -> None:
        """Infer each domain's labels (or take ``labels``), then build the heads.

        labels: ``{domain: [label, ...]}``, e.g. from ``spacy init labels``.
        """
        validate_get_examples(get_examples, "LaDTLEntityRecognizer.initialize")
        if labels is None:
            labels = self._labels_from_examples(get_examples())
        self._set_labels(labels)
        doc_sample = [eg.predicted for eg in islice(get_examples(), 10) if len(eg.predicted)]
        if not doc_sample:
            raise ValueError(f"[{self.name}] initialize got no non-empty examples.")
        self.model.attrs["tag_sets"] = self.tag_sets
        self.model.initialize(X=doc_sample)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "LaDTLEntityRecognizer":
        super().from_bytes(bytes_data, exclude=exclude)
        self._after_load()
        return self

    def from_disk(self, path: Any, *, exclude: Iterable[str] = tuple()) -> "LaDTLEntityRecognizer":
        super().from_disk(path, exclude=exclude)
        self._after_load()
        return self

    # -- private helpers -------------------------------------------------

    def _after_load(self) -> None:
        self.cfg.pop("default_domain", None)  # saved by spacy-ladtl 0.1.0 pipelines; the config decides now
        self.settings = self._transfer_settings()
        self._matches = None
        self._memories = None
        self._tag_sets = None
        self._sync_model_attrs()

    def _sync_model_attrs(self) -> None:
        self.model.attrs["default_domain"] = self._default_domain

    def _transfer_settings(self) -> TransferSettings:
        cfg = self.cfg
        return TransferSettings(
            alpha=cfg["alpha"],
            beta=cfg["beta"],
            domain_weights=self._domain_weights(),
            mmd=cfg["mmd"],
            mmd_include_o=cfg["mmd_include_o"],
            mmd_bandwidth=cfg["mmd_bandwidth"],
            mmd_labels=cfg["mmd_labels"],
            mmd_max_tokens=cfg["mmd_max_tokens"],
            mmd_min_tokens=cfg["mmd_min_tokens"],
            # absent from pipelines saved before mmd_memory existed
            mmd_memory=cfg.get("mmd_memory", 0),
            label_map=cfg["label_map"],
            # absent from pipelines saved before transfer_pairs existed (two domains: the same either way)
            transfer_pairs=cfg.get("transfer_pairs", "with_target"),
            target_index=self.domains.index(cfg["target_domain"]),
        )

    def _domain_weights(self) -> List[float]:
        """Paper's epsilon: 1 - epsilon for the target, epsilon shared by the others."""
        domains, target, epsilon = self.domains, self.cfg["target_domain"], self.cfg["epsilon"]
        if len(domains) == 1:
            return [1.0]
        others = len(domains) - 1
        return [1.0 - epsilon if d == target else epsilon / others for d in domains]

    def _labels_from_examples(self, examples: Iterable[Example]) -> Dict[str, List[str]]:
        found: Dict[str, set] = {d: set() for d in self.domains}
        counts = {d: 0 for d in self.domains}
        for eg in examples:
            domain = example_domain(eg) or self._default_domain
            if domain not in found:
                raise ValueError(
                    f"[{self.name}] an example is marked with domain {domain!r}, which is not one of "
                    f"the model's domains {self.domains}. Add it to `domains` in [components.{self.name}.model]."
                )
            counts[domain] += 1
            found[domain].update(ent.label_ for ent in eg.reference.ents)
        empty = [d for d, n in counts.items() if n == 0]
        if empty:
            raise ValueError(
                f"[{self.name}] domain(s) {empty} have no training examples. Give each domain in "
                f"[components.{self.name}.model] domains a corpus in the training reader's `paths`."
            )
        return {d: sorted(labels) for d, labels in found.items()}

    def _set_labels(self, labels: Dict[str, Sequence[str]]) -> None:
        unknown = set(labels) - set(self.domains)
        missing = set(self.domains) - set(labels)
        if unknown or missing:
            raise ValueError(
                f"[{self.name}] labels must name exactly the model's domains {self.domains}; "
                f"got {sorted(labels)} (unknown: {sorted(unknown)}, missing: {sorted(missing)})."
            )
        all_labels = {label for values in labels.values() for label in values}
        stray = sorted(set(self.cfg["label_map"]) - all_labels)
        if stray:
            raise ValueError(
                f"[{self.name}] label_map renames {stray}, which is no label of any domain "
                f"(labels: {sorted(all_labels)}). Fix label_map in [components.{self.name}]."
            )
        self.cfg["labels"] = {d: sorted(labels[d]) for d in self.domains}
        self._tag_sets = None
        self._matches = None
        self._memories = None

    def _domain_matches(self, device: torch.device) -> Dict[Tuple[int, int], TagMatch]:
        if self._matches is None:
            tag_sets = [self.tag_sets[d] for d in self.domains]
            n = len(tag_sets)
            self._matches = {
                (a, b): match_domains(tag_sets[a], tag_sets[b], self.settings, device)
                for a in range(n)
                for b in range(a + 1, n)
            }
        return self._matches

    def _domain_memories(self) -> Optional[Dict[Tuple[int, int], PairMemory]]:
        """La-MMD's memories per domain pair (``mmd_memory > 0``), kept for the whole training."""
        size = self.settings.mmd_memory
        if size <= 0:
            return None
        if self._memories is None:
            n = len(self.domains)
            self._memories = {
                (a, b): (LabelMemory(size), LabelMemory(size)) for a in range(n) for b in range(a + 1, n)
            }
        return self._memories

    def _gold_tag_ids(self, examples: Sequence[Example], batch: EncodedBatch) -> torch.Tensor:
        """(B, T) gold tag ids, each in its own domain's tag set; misaligned tokens count as O."""
        gold = gold_tag_ids(
            examples,
            batch.domain_ids.tolist(),
            [self.tag_sets[d] for d in self.domains],
            self.tag_scheme,
            tuple(batch.mask.shape),
            domains=self.domains,
            name=self.name,
        )
        return gold.to(batch.mask.device)

    def _loss_terms(self, examples: Sequence[Example], batch: EncodedBatch) -> Dict[str, torch.Tensor]:
        gold = self._gold_tag_ids(examples, batch)
        matches = self._domain_matches(batch.mask.device)
        return ladtl_loss(batch, gold, self.settings, matches, self._domain_memories())
