"""The domain marker: which domain (specialty) a Doc belongs to.

La-DTL routes every sentence to the CRF head of its domain. The marker is a
Doc extension, ``doc._.ladtl_domain``, stored in ``doc.user_data`` so it
survives ``DocBin`` serialization with ``store_user_data=True``.
"""
from typing import Optional

from spacy.tokens import Doc
from spacy.training import Example

DOMAIN_ATTR = "ladtl_domain"

if not Doc.has_extension(DOMAIN_ATTR):
    Doc.set_extension(DOMAIN_ATTR, default=None)


def get_domain(doc: Doc) -> Optional[str]:
    """Return the domain name marked on ``doc``, or None if unmarked."""
    return doc._.get(DOMAIN_ATTR)


def set_domain(doc: Doc, domain: Optional[str]) -> Doc:
    """Mark ``doc`` as belonging to ``domain`` (None clears the marker)."""
    doc._.set(DOMAIN_ATTR, domain)
    return doc


def set_example_domain(example: Example, domain: str) -> Example:
    """Mark both sides of ``example`` (predicted and reference) with ``domain``."""
    set_domain(example.predicted, domain)
    set_domain(example.reference, domain)
    return example


def example_domain(example: Example) -> Optional[str]:
    """The domain of an Example: its reference marker, else its predicted one."""
    return get_domain(example.reference) or get_domain(example.predicted)

