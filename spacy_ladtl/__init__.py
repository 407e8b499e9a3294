"""spacy-ladtl: Label-aware Double Transfer Learning (Wang et al., NAACL 2018) for spaCy.

Importing the package registers the ``ladtl_ner`` factory and the
``spacy-ladtl.*`` architectures, readers, batchers and scorers; the entry points
in ``setup.cfg`` let spaCy find them without this import.
"""
from . import architectures, batchers, callbacks, component, embeddings, loggers, readers, scorer  # noqa: F401
from . import transformer  # noqa: F401  (imports no spacy-transformers: safe without the extra)
from .component import LaDTLEntityRecognizer
from .domains import get_domain, set_domain

__version__ = "0.1.0"
__all__ = ["LaDTLEntityRecognizer", "get_domain", "set_domain", "__version__"]
